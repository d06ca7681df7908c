"""Executors run the task graph. `local` runs each task's work in a worker process, one per slot."""
