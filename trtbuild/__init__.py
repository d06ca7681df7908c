"""trtbuild: declarative, content-addressed builds of TensorRT engines from PyTorch models."""

__version__ = "0.1.0"
