"""Why TensorRT made no network or no engine, in words a user can act on.

The parser reports errors per node; the builder only returns None and says why through its logger
(`loader.builder_logger` keeps those messages). The build worker reports either as data (the
loader imports nothing of trtbuild); `from_response` turns that into a TaskError here.

Either way the message itself names what failed —
the node and its op, or the builder's first error — because a run's summary shows the message, and
the details add the rest and what to try.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from trtbuild.errors import TaskError

# The parser's description of an op it has no importer for (it then looks for a plugin of that name).
NO_IMPORTER = "Plugin not found"
# TensorRT's messages end with where in its sources they were raised: " In executeReshape at
# /_src/runtime/core/shapeMachine.cpp:348". Of no use to the user, and long.
_SOURCE_LOCATION = re.compile(r"\s+In \w+ at /\S+:\d+")
WARNINGS_QUOTED = 5


def from_response(module: str, response: Mapping[str, Any]) -> TaskError:
    """The TaskError for a worker response that has a "failure" (see `loader.build_from_request`)."""
    lines = [(severity, message) for severity, message in response.get("log", [])]
    if response["failure"] == "parser":
        return parser_failure(module, [(node, op, why) for node, op, why in response["rejected"]])
    if response["failure"] == "builder":
        return builder_failure(lines)
    return TaskError(response.get("error", "the builder failed"), [])


def parser_failure(module: str, rejected: list[tuple[str, str, str]]) -> TaskError:
    """`rejected`: (node name, op, the parser's description) per node it rejected."""
    described = [f"node '{node}' ({op}): {why}" for node, op, why in rejected]
    if len(described) == 1:
        message = f"the {module} ONNX parser rejected {described[0]}"
    else:
        listed = ", ".join(f"'{node}' ({op})" for node, op, _ in rejected)
        message = f"the {module} ONNX parser rejected {len(rejected)} nodes: {listed}"
    unsupported = sorted({op for _, op, why in rejected if NO_IMPORTER in why})
    if unsupported:
        hint = (
            f"hint: {module} has no importer for {', '.join(unsupported)} (nor a plugin of that name): "
            "express that part of the model with other ops, try the other exporter (export.exporter) "
            "or another opset, or compute it outside the engine"
        )
    else:
        hint = (
            "hint: try the other exporter (export.exporter) or another opset; the node's name leads "
            "to the model code that made it"
        )
    return TaskError(message, [*(described if len(described) > 1 else []), hint])


def builder_failure(lines: list[tuple[str, str]]) -> TaskError:
    """`lines`: what the builder logged, (severity name, message). Its first error goes in the
    message, the other errors and its last warnings in the details."""
    errors = [_SOURCE_LOCATION.sub("", m) for s, m in lines if s in ("INTERNAL_ERROR", "ERROR")]
    warnings = [_SOURCE_LOCATION.sub("", m) for s, m in lines if s == "WARNING"]
    details = [f"builder error: {error}" for error in errors[1:]]
    details += [f"builder warning: {warning}" for warning in warnings[-WARNINGS_QUOTED:]]
    if len(warnings) > WARNINGS_QUOTED:
        earlier = len(warnings) - WARNINGS_QUOTED
        details.append(f"({earlier} earlier warning(s): TRTBUILD_LOG=info shows them)")
    if any("violate shape constraints" in error for error in errors):
        details.append(
            "hint: a profile's shapes contradict a size the graph fixes, often one the model traced as "
            "a constant (x.view(8, -1), int(x.shape[1]) in arithmetic): compute it from x.shape "
            "symbolically, or keep the profiles at the traced size"
        )
    else:
        details.append("hint: check the profiles cover the graph; TRTBUILD_LOG=debug shows the builder's log")
    first = errors[0] if errors else "it logged no error"
    return TaskError(f"the builder returned no engine: {first}", details)
