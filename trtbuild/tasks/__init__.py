"""Task kinds, one module each, and the pipeline that orders them (`pipeline.PIPELINE`).

Importing this is cheap: every heavy import happens inside a kind's `run`.
"""
