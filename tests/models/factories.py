"""Factories for the corpus of real architectures (tests/models/test_corpus.py).

Each is a `source:` of a config the test writes; the file is copied beside that config, so it is
the user's code as trtbuild sees it (hashed into the keys), not a module of the test suite. Random
init only: no weights are downloaded.
"""

from __future__ import annotations

import torch


def squeezenet() -> torch.nn.Module:
    """torchvision's SqueezeNet 1.1: fire modules (a 1x1 squeeze, then 1x1 and 3x3 expands
    concatenated), max pools, and a conv classifier with global average pooling.

    Not MobileNetV3-small: randomly initialised, its logits are about 1e-9 (its signal fades through
    the hardswish and squeeze-excitation blocks), so int8 quantises them all to zero and its cosine
    gate means nothing."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.squeezenet1_1(weights=None, num_classes=10)


def resnet10t() -> torch.nn.Module:
    """timm's ResNet-10-T: a deep stem and average-pool downsampling, built by timm's factory."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("resnet10t", pretrained=False, num_classes=10)


class CausalLM(torch.nn.Module):
    """A tiny GPT-2 without a KV cache: token ids in, next-token logits out, causal mask inside."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        config = GPT2Config(
            vocab_size=256,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=2,
            use_cache=False,
            bos_token_id=0,
            eos_token_id=0,
        )
        self.lm = GPT2LMHeadModel(config).eval()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits


class TwoHeads(torch.nn.Module):
    """Returns a dict, as detection and multi-task models do: the outputs are its values."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU())
        self.scores = torch.nn.Linear(32, 5)
        self.embedding = torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.body(x)
        return {"scores": self.scores(hidden).softmax(-1), "embedding": self.embedding(hidden)}


class Fusion(torch.nn.Module):
    """Two images of any height and width (an RGB frame and its depth map) fused into one map."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rgb = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.depth = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 2, 1)

    def forward(self, image: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        fused = torch.relu(self.rgb(image)) * torch.sigmoid(self.depth(depth))
        return self.head(fused)


class Spectrum(torch.nn.Module):
    """A magnitude spectrum: torch.fft.rfft exports (dynamo) as an ONNX DFT node."""

    def __init__(self, spectral: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.spectral = spectral
        self.fc = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spectral:
            return self.fc(torch.fft.rfft(x, dim=-1).abs()[..., :16])
        return self.fc(x[..., :16])
