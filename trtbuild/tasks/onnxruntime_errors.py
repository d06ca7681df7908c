"""ONNX Runtime's exceptions, read for what a user needs: the node that failed, its op, and ORT's
own sentence about why, without the C++ source location that precedes it."""

from __future__ import annotations

import re
from dataclasses import dataclass

# "Non-zero status code returned while running Reshape node. Name:'/Reshape' Status Message: ..."
_NODE = re.compile(r"running (?P<op>\S+) node\. Name:'(?P<node>[^']*)' Status Message: (?P<status>.*)", re.S)
# ".../reshape_helper.h:84 onnxruntime::ReshapeHelper::ReshapeHelper(...) size != 0 ... was false. "
_SOURCE_LOCATION = re.compile(r"^\S+\.(?:h|cc|cpp):\d+ .*? was false\.\s*", re.S)


@dataclass(frozen=True)
class OnnxRuntimeFailure:
    message: str  # ORT's reason, one line
    node: str | None = None
    op: str | None = None

    def __str__(self) -> str:
        if self.node is None:
            return self.message
        return f"node '{self.node}' ({self.op}) failed: {self.message}"


def read_failure(error: BaseException) -> OnnxRuntimeFailure:
    """What `error`, raised by an ORT session's run or creation, says about where and why."""
    text = " ".join(str(error).split())
    match = _NODE.search(text)
    if match is None:
        # "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : <reason>": keep the reason.
        return OnnxRuntimeFailure(text.split(" : ", 3)[-1][:500])
    status = _SOURCE_LOCATION.sub("", match["status"]).strip()
    return OnnxRuntimeFailure(status[:500], match["node"], match["op"])
