"""The Ray executor (`trtbuild run --executor ray`): cluster.py connects, executor.py schedules on
the driver, node.py runs one task on a node. Imports nothing: ray loads only when a run asks for it."""
