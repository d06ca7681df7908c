"""ONNX Runtime's exceptions as messages a user can act on: which node failed, why, what to try.

ORT raises one string per failure, made for its own developers: a status code, the node's op and
name, the C++ source file and function, and the condition that was false, e.g.

    [ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node.
    Name:'/Reshape' Status Message: /onnxruntime_src/.../reshape_helper.h:84 onnxruntime::
    ReshapeHelper::ReshapeHelper(...) size != 0 && ... was false. The input tensor cannot be
    reshaped to the requested shape. Input shape:{1,2,4}, requested shape:{-1,12}

`onnxruntime_failure` keeps the node, its op and the sentence meant for people, adds a hint, and
returns a TaskError; any task that runs ORT (validate, the overflow scan, triage, a probe of the
profiles' shapes) raises it instead of letting ORT's exception print a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trtbuild.errors import TaskError

# "while running Reshape node. Name:'/Reshape'" (a kernel failed at run time).
_RUNNING = re.compile(r"while running (?P<op>[\w.]+) node\. Name:'(?P<node>[^']*)'")
# "In Node, ("concat", Concat, "", -1)" (the model failed to load: ONNX's checker or inference).
_LOADING = re.compile(r'In Node, \("(?P<node>[^"]*)", (?P<op>[\w.]+)')
# "Could not find an implementation for ConvInteger(10) node with name 'conv'" (no kernel).
_NO_KERNEL = re.compile(r"implementation for (?P<op>[\w.]+)\(\d+\) node with name '(?P<node>[^']*)'")
# "of input parameter (x) of operator (Conv) in node (conv) is invalid" (a type ORT does not take).
_TYPED = re.compile(r"of operator \((?P<op>[\w.]+)\) in node \((?P<node>[^)]*)\)")
# ORT's own prefix, possibly nested: "[ONNXRuntimeError] : 1 : FAIL : ".
_PREFIX = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : ")
# A C++ source location and function: "/onnxruntime_src/.../op_kernel.cc:87 virtual OrtValue* f(...) ".
_SOURCE = re.compile(r"^\S+\.(?:cc|h|cpp):\d+ [^\[]*?(?:was false\. |(?=\[ONNXRuntimeError\]))")

# What to try, by what ORT says (first match wins).
_HINTS = (
    (
        "re-use buffer",
        "the graph's shape annotations (value_info) give one dim name to tensors of different sizes: "
        "a tool left them stale. Remove graph.value_info from the graph (trtbuild does so after "
        "simplify and precision), or report it with the graph",
    ),
    (
        "cannot be reshaped",
        "a size in the model was traced as a constant (x.view(8, -1), int(x.shape[1]) in arithmetic), "
        "so the graph takes only the traced shape: compute it from x.shape symbolically, or keep the "
        "profile's dims at the traced size",
    ),
    (
        "NOT_IMPLEMENTED",
        "ONNX Runtime's CPU provider has no kernel for this op in these types: the graph cannot be "
        "checked on this machine",
    ),
    (
        "is not a registered function/op",
        "a custom op: ONNX Runtime has no kernel for it, so the graph cannot be run on the CPU here",
    ),
    (
        "Type Error",
        "ONNX Runtime's CPU provider has no kernel for this op in these types: the graph cannot be "
        "checked on this machine",
    ),
    (
        "invalid model",
        "the graph breaks ONNX's rules at this node: try the other exporter (export.exporter) or "
        "another opset, or simplify: false if simplify made it",
    ),
)
GENERIC_HINT = (
    "check that the graph accepts every shape the profiles allow (min, opt and max of each), "
    "e.g. with ONNX Runtime on the cell's model.onnx"
)


@dataclass(frozen=True)
class OnnxRuntimeFault:
    """What an ORT exception says, for people: the node (when ORT names one), its op, why, a hint."""

    node: str | None
    op: str | None
    reason: str
    hint: str

    def where(self) -> str:
        if self.node is None:
            return ""
        return f"node '{self.node}' ({self.op})" if self.op else f"node '{self.node}'"


def read_onnxruntime_error(error: BaseException) -> OnnxRuntimeFault:
    text = " ".join(str(error).split())
    found = next((m for p in (_RUNNING, _LOADING, _NO_KERNEL, _TYPED) if (m := p.search(text))), None)
    reason = text.split("Status Message: ", 1)[-1] if "Status Message: " in text else text
    reason = _SOURCE.sub("", _PREFIX.sub("", _SOURCE.sub("", reason))).strip()
    hint = next((hint for key, hint in _HINTS if key.lower() in text.lower()), GENERIC_HINT)
    return OnnxRuntimeFault(
        node=found["node"] if found else None,
        op=found["op"] if found else None,
        reason=reason[:500] or type(error).__name__,
        hint=hint,
    )


def onnxruntime_failure(error: BaseException, doing: str) -> TaskError:
    """A TaskError for `error`, raised by ONNX Runtime while `doing` (a phrase: "ONNX Runtime could
    not run the cell's graph on sample 2 (x: [1, 2, 4])"): names the node, ORT's reason, a hint."""
    fault = read_onnxruntime_error(error)
    where = f" at {fault.where()}" if fault.node is not None else ""
    return TaskError(f"{doing}{where}: {fault.reason}", [f"hint: {fault.hint}"])


def feeds_description(feeds: Mapping[str, Any]) -> str:
    """The inputs' shapes, as a failure message quotes them: "x: [1, 2, 4], mask: [1, 2]"."""
    return ", ".join(f"{name}: {list(getattr(value, 'shape', ()))}" for name, value in feeds.items())
