"""Which `nn.Module` an ONNX node came from, as far as the exporter recorded it.

The torchscript exporter encodes the module scope in the node name (`/layer1/layer1.0/conv1/Conv`);
the dynamo exporter leaves names like `node_conv2d` and records the scope in the node's metadata
(`pkg.torch.onnx.name_scopes`, or the older `namespace`). Either way the scopes are a chain of
module names from the root, some already qualified (`layer1.0` under `layer1`), some not (`conv1`).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
NAMESPACE = "namespace"
ROOT = "(root)"


def module_path(node_name: str, metadata: Mapping[str, str]) -> str | None:
    """The dotted module path (`layer1.0.conv1`), ROOT for an op of the top module, None if unknown."""
    scopes = _metadata_scopes(metadata)
    if scopes is not None:
        return qualify(scopes)
    if node_name.startswith("/") and node_name.count("/") >= 1:
        # torchscript: "/scope/scope/Op"; the last part is the op, not a module.
        return qualify(node_name.split("/")[1:-1])
    return None


def qualify(scopes: Sequence[str]) -> str:
    path = ""
    for scope in scopes:
        if not scope:
            continue
        # "layer1.0" under "layer1" is already qualified; "conv1" under it is not.
        path = f"{path}.{scope}" if path and not scope.startswith(path + ".") else scope
    return path or ROOT


def _metadata_scopes(metadata: Mapping[str, str]) -> list[str] | None:
    """Module scopes from dynamo metadata, without the trailing op entry; None if absent."""
    raw = metadata.get(NAME_SCOPES)
    if raw:
        try:
            scopes = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            scopes = None
        if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
            return scopes[:-1]  # the last entry names the op itself (e.g. "mul_1")
    namespace = metadata.get(NAMESPACE)
    if namespace:
        # ": __main__.Net/body: torch...Sequential/body.1: __main__.Square/mul: aten.mul.Tensor"
        parts = [part.split(":", 1)[0].strip() for part in namespace.split("/")]
        return parts[:-1]
    return None
