"""Backends: adapters over the engine builders. `trt` covers both TensorRT flavours."""
