"""Plan: resolve specs into a DAG of tasks and decide, by content hash, which must run."""
