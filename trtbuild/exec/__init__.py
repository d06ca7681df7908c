"""Executors run the task graph. `local` runs it in this process with a pool of worker threads."""
