"""VIGIA-PlumeNet: the network that maps a frame to six class logits per pixel.

:class:`PlumeNet` is a backbone (a :class:`~plumenet.model.backbone.Backbone`, or any
module with ``embed_dim``/``patch_size`` and a grid-returning forward) followed by a
:class:`SegmentationHead` (two convolutions from the ``D x H/14 x W/14`` patch grid to
class logits), upsampled bilinearly to the input size. :class:`ModelConfig` is everything
needed to rebuild one, weights aside; the registered architectures and
:func:`~plumenet.model.registry.build_model` live in :mod:`plumenet.model.registry`.
Nothing here touches the network.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2WithRegistersConfig

from plumenet.classes import MODEL_CLASSES

__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelConfig",
    "PlumeNet",
    "SegmentationHead",
    "attention_of",
    "count_parameters",
    "set_attention",
]

#: ImageNet statistics used by DINOv2 (RGB, 0-1 scale).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`PlumeNet` (weights aside).

    ``backbone`` holds keyword arguments for ``transformers.Dinov2WithRegistersConfig``;
    ``hf_backbone`` names the hub repository the backbone weights come from when built
    with ``pretrained=True`` (``None`` for backbones trained here). ``frozen_backbone``
    says whether training keeps the backbone fixed (the paper's recipe) or trains it too
    (only sensible for the small demo backbone).
    """

    name: str
    backbone: dict[str, Any] = field(default_factory=dict)
    hf_backbone: str | None = None
    head_hidden: int = 64
    input_size: int = 518
    num_classes: int = len(MODEL_CLASSES)
    frozen_backbone: bool = True

    def __post_init__(self) -> None:
        patch = int(self.backbone.get("patch_size", 14))
        if self.input_size <= 0 or self.input_size % patch:
            raise ValueError(
                f"model config {self.name!r}: input_size {self.input_size} must be a positive "
                f"multiple of the patch size {patch}"
            )
        if self.num_classes <= 0 or self.head_hidden <= 0:
            raise ValueError(f"model config {self.name!r}: num_classes and head_hidden must be > 0")

    @property
    def patch_size(self) -> int:
        return int(self.backbone.get("patch_size", 14))

    @property
    def grid_size(self) -> int:
        """Side of the patch grid at ``input_size`` (37 for 518 / 14)."""
        return self.input_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` inverts it."""
        out = dataclasses.asdict(self)
        out["backbone"] = json.loads(json.dumps(self.backbone))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error (not silently lost)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        if "name" not in data:
            raise ValueError("model config needs a 'name'")
        kwargs = dict(data)
        kwargs["backbone"] = dict(kwargs.get("backbone") or {})
        return cls(**kwargs)

    def hf_config(self) -> Any:
        """The ``transformers.Dinov2WithRegistersConfig`` of the backbone."""
        return Dinov2WithRegistersConfig(**self.backbone)


class SegmentationHead(nn.Module):
    """Two convolutions on the patch grid: 3x3 (D -> hidden) + BN + GELU, then 1x1 -> classes."""

    def __init__(
        self, in_dim: int, hidden: int = 64, num_classes: int = len(MODEL_CLASSES)
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, hidden, kernel_size=3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(hidden)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(hidden, num_classes, kernel_size=1)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.norm(self.conv1(grid))))


class PlumeNet(nn.Module):
    """Backbone + head. ``forward`` takes a *normalised* float batch (see :meth:`normalize`)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = config
        self.register_buffer(
            "mean",
            torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1),
            persistent=False,
        )
        self.register_buffer(
            "std",
            torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1),
            persistent=False,
        )

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return self.mean.device

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def classes(self) -> tuple[str, ...]:
        return (
            MODEL_CLASSES
            if self.config.num_classes == len(MODEL_CLASSES)
            else tuple(f"class_{i}" for i in range(self.config.num_classes))
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (0-255) or float (0-1) B x 3 x H x W -> ImageNet-normalised float32."""
        if x.dtype == torch.uint8:
            # (x / 255 - mean) / std, as one subtraction and one multiplication
            return torch.sub(x.to(self.mean.dtype), self.mean * 255.0).mul_(
                1.0 / (self.std * 255.0)
            )
        return torch.sub(x.to(self.mean.dtype), self.mean).mul_(1.0 / self.std)

    def forward_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised B x 3 x H x W -> logits B x C x H/14 x W/14."""
        return self.head(self.backbone(x))

    def forward_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid logits (B x C x h x w) and logits upsampled to B x C x H x W, in one pass.

        The upsampling runs in float32 even under autocast (argmax ties stay rare).
        """
        grid = self.forward_grid(x)
        full = F.interpolate(grid.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return grid, full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised B x 3 x H x W -> logits B x C x H x W (bilinear upsampling)."""
        return self.forward_outputs(x)[1]


#: Attention kernels of ``transformers`` a DINOv2 backbone can run with.
ATTENTION_IMPLEMENTATIONS: tuple[str, ...] = ("sdpa", "eager")


def set_attention(model: nn.Module, implementation: str = "sdpa") -> int:
    """Select the attention kernel of every ``transformers`` model inside ``model``.

    ``"sdpa"`` is ``torch.nn.functional.scaled_dot_product_attention``: on CUDA it
    dispatches to flash attention (fp16/bf16) or the memory-efficient kernel (fp32); on
    CPU to torch's fused CPU kernel. ``"eager"`` is the explicit softmax(QK^T)V of
    ``transformers``. ``transformers`` >= 5 already picks SDPA for
    ``Dinov2WithRegistersModel`` (``_supports_sdpa``); this makes the choice explicit so a
    config or version that falls back to eager does not slow the GPU path. Returns how
    many ``transformers`` models were switched (0 for a custom backbone).
    """
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"attention must be one of {', '.join(ATTENTION_IMPLEMENTATIONS)}, got "
            f"{implementation!r}"
        )
    switched = 0
    for module in model.modules():
        setter = getattr(module, "set_attn_implementation", None)
        if callable(setter) and hasattr(module, "config"):
            if module.config._attn_implementation != implementation:  # noqa: SLF001 - transformers' public field
                setter(implementation)
            switched += 1
    return switched


def attention_of(model: nn.Module) -> str | None:
    """The attention kernel of the first ``transformers`` model inside ``model`` (or None)."""
    for module in model.modules():
        if callable(getattr(module, "set_attn_implementation", None)):
            return str(module.config._attn_implementation)  # noqa: SLF001 - as above
    return None


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those requiring gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
