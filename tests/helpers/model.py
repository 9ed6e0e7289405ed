"""Small, offline models for tests (import from other test modules).

- :func:`tiny_loaded_model`: the ``tiny`` DINOv2-with-registers config (2 layers, 32 wide,
  518 input -> 37 x 37 grid) with seeded random weights. Fast on a CPU; its predictions
  are arbitrary but deterministic.
- :func:`colour_loaded_model`: a hand-set PlumeNet whose backbone is a 14 x 14 patch
  average of the RGB input and whose head marks a patch as one class when its mean
  colour is close enough to a target colour (``r - g - b`` above a threshold for the
  default red target). It makes detection tests real without trained weights.
- :func:`tiny_model_at` and :func:`frame_batches`: the ``tiny`` model at a small input
  size and random uint8 frame batches for it (anomaly tests).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plumenet.classes import CLASS_COLORS, MODEL_CLASSES
from plumenet.model.loaded import LoadedModel, weights_digest
from plumenet.model.network import IMAGENET_MEAN, IMAGENET_STD, ModelConfig, PlumeNet
from plumenet.model.registry import MODEL_CONFIGS, build_model

__all__ = [
    "COLUMN_RGB",
    "PatchMeanBackbone",
    "colour_loaded_model",
    "frame_batches",
    "tiny_loaded_model",
    "tiny_model",
    "tiny_model_at",
]

#: The colour :func:`colour_loaded_model` detects as ``eruption_column`` by default.
COLUMN_RGB: tuple[int, int, int] = CLASS_COLORS["eruption_column"]


def tiny_model(seed: int = 0) -> PlumeNet:
    """The ``tiny`` architecture with seeded random weights (eval mode, CPU)."""
    return build_model("tiny", seed=seed)


def tiny_loaded_model(seed: int = 0, *, model_id: str | None = None) -> LoadedModel:
    """A :class:`LoadedModel` around :func:`tiny_model`, with a real digest."""
    model = tiny_model(seed)
    return LoadedModel(
        model=model,
        model_id=model_id or f"tiny-seed{seed}",
        digest=weights_digest(model.state_dict()),
        backbone="tiny",
        is_demo=False,
        source="tests.helpers.model",
    )


class PatchMeanBackbone(nn.Module):
    """Stand-in backbone: the mean normalised RGB of every 14 x 14 patch (D = 3)."""

    patch_size = 14
    embed_dim = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"input {h} x {w} is not a multiple of {self.patch_size}")
        return F.avg_pool2d(x, self.patch_size)


def colour_loaded_model(
    *,
    class_name: str = "eruption_column",
    weights: tuple[float, float, float] = (1.0, -1.0, -1.0),
    threshold: float = 0.2,
    input_size: int = 518,
) -> LoadedModel:
    """Hand-set PlumeNet: a patch is ``class_name`` when ``weights . mean_rgb01 > threshold``.

    The default (``r - g - b > 0.2``) fires on the eruption-column class colour
    (220, 20, 60) but not on sky blue, land brown, grey ash or white. Everything else is
    ``background``. A patch whose target-coloured part covers only ~half or less of its
    area falls below the threshold, which is what makes small blobs vanish in a resize.
    """
    cfg = ModelConfig(
        name="colour-test",
        backbone={"patch_size": 14, "hidden_size": 3},
        hf_backbone=None,
        head_hidden=1,
        input_size=input_size,
    )
    model = build_model(cfg, backbone=PatchMeanBackbone(), seed=0)
    head = model.head
    k = 20.0  # sharpness of the colour test
    target = MODEL_CLASSES.index(class_name)
    with torch.no_grad():
        head.conv1.weight.zero_()
        # normalised x_c = (v_c - mean_c) / std_c  =>  v_c = x_c * std_c + mean_c
        for c in range(3):
            head.conv1.weight[0, c, 1, 1] = k * weights[c] * IMAGENET_STD[c]
        offset = sum(weights[c] * IMAGENET_MEAN[c] for c in range(3)) - threshold
        head.norm.running_mean.zero_()
        head.norm.running_var.fill_(1.0)
        head.norm.weight.fill_(1.0)
        head.norm.bias.fill_(k * offset)
        head.conv2.weight.zero_()
        head.conv2.bias.fill_(-10.0)
        head.conv2.bias[MODEL_CLASSES.index("background")] = 0.0
        head.conv2.weight[target, 0, 0, 0] = 10.0
        head.conv2.bias[target] = -5.0
    model.eval()
    return LoadedModel(
        model=model,
        model_id=f"colour-{class_name}",
        digest=weights_digest(model.state_dict()),
        backbone="patch-mean",
        is_demo=False,
        source="tests.helpers.model",
    )


def tiny_model_at(input_size: int, seed: int = 0) -> PlumeNet:
    """The ``tiny`` architecture at another input size (a multiple of 14), seeded."""
    cfg = ModelConfig.from_dict(
        {**MODEL_CONFIGS["tiny"].to_dict(), "name": f"tiny-{input_size}", "input_size": input_size}
    )
    return build_model(cfg, seed=seed)


def frame_batches(
    rng: np.random.Generator, n: int, size: int = 112, batch: int = 4
) -> list[np.ndarray]:
    """``n`` batches of random uint8 ``batch x size x size x 3`` frames."""
    return [rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8) for _ in range(n)]
