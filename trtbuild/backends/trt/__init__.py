"""One adapter over datacenter TensorRT (`tensorrt`) and TensorRT for RTX (`tensorrt_rtx`).

Both expose the same builder / network / parser / profile API; the differences (ahead-of-time
compute-capability targets, which GPUs can run an engine, how to choose between them) stay in
this package.
"""
