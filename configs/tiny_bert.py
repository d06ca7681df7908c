"""A tiny, randomly initialised BERT for `configs/bert.yaml` (no weight download).

It lives beside the config because a model's `source:` module is looked for in the config's folder
first: `trtbuild run configs/bert.yaml` finds it from a fresh clone without PYTHONPATH, and as a local
file its content is hashed into every task key that uses it (edit it and the export reruns).
"""

from __future__ import annotations

from typing import Any

VOCAB_SIZE = 1000  # configs/bert.yaml draws input_ids from [0, VOCAB_SIZE)


def tiny_bert(seed: int = 0, **overrides: Any) -> Any:
    """BertModel with 2 layers of width 64; `seed` makes its random weights the same on every run."""
    import torch
    from transformers import BertConfig, BertModel

    settings: dict[str, Any] = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "max_position_embeddings": 128,
        # The eager attention exports to plain MatMul/Softmax on both exporters; SDPA adds a
        # fused path whose export depends on the torch version.
        "attn_implementation": "eager",
        **overrides,
    }
    torch.manual_seed(seed)
    return BertModel(BertConfig(**settings)).eval()
