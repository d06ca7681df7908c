"""Task keys: what a task's output is a pure function of.

key = sha256(canonical JSON of: keying scheme version, task kind and implementation version,
canonical params, content hashes of every input, and the tool facts the task depends on).
Bump KEY_SCHEME when the recipe itself changes, so old cache entries are never misread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from trtbuild.plan.graph import canonical_json

# 2: params are each kind's typed dataclass in canonical JSON (field names as declared there).
KEY_SCHEME = 2


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
