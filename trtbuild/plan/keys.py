"""Task keys: what a task's output is a pure function of.

key = sha256(canonical JSON of: keying scheme version, task kind and implementation version,
canonical params, content hashes of every input, and the tool facts the task depends on).
Bump KEY_SCHEME when the recipe itself changes, so old cache entries are never misread.

The key stays sha256 hex (an action entry's file name, hashed from a few hundred bytes of JSON);
the content hashes inside the material are BLAKE3 digests that name their algorithm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from trtbuild.plan.graph import canonical_json

# 2: params are each kind's typed dataclass in canonical JSON (field names as declared there).
# 3: input and output content hashes are BLAKE3 digests, `blake3:<hex>` (were bare sha256 hex).
KEY_SCHEME = 3


def key_material(
    kind: str, version: int, params: Mapping[str, Any], inputs: Mapping[str, str], tools: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything that enters a key, in a form plan explanations and the lock can show."""
    return {
        "scheme": KEY_SCHEME,
        "kind": kind,
        "version": version,
        "params": dict(params),
        "inputs": dict(inputs),
        "tools": dict(tools),
    }


def task_key(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()
