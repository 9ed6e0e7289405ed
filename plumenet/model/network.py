"""VIGIA-PlumeNet: a DINOv2-with-registers ViT backbone and a small convolutional head.

The backbone (``transformers.Dinov2WithRegistersModel``) turns a normalised image into
patch tokens; the CLS and register tokens are dropped and the patch tokens are laid out
as a ``D x H/14 x W/14`` grid. The head (two convolutions) maps that grid to six class
logits, which :class:`PlumeNet` upsamples bilinearly to the input size.

Three architectures are registered in :data:`MODEL_CONFIGS`:

``vits14-reg``
    The published model: ViT-S/14 with 4 registers, exactly the architecture of
    ``facebook/dinov2-with-registers-small`` (hidden 384, 12 layers, 6 heads, MLP ratio
    4, 518 x 518 input -> 37 x 37 grid). Frozen backbone, head < 250k parameters.
``tiny``
    A 2-layer, 32-wide backbone for offline tests (random weights, 518 input so the grid
    is still 37 x 37; any multiple of 14 works).
``demo``
    A 3-layer, 64-wide backbone trained from scratch (``frozen_backbone=False``) on
    synthetic scenes by ``python -m plumenet.training.demo_model``. It runs at 224 x 224 input
    (16 x 16 grid) so that a CPU can train it in minutes; its weights are about 1 MB.
    It is a demonstration model, not a scientific one.

Only :func:`build_model` with ``pretrained=True`` touches the network (to fetch the
backbone named by ``hf_backbone``); everything else is offline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plumenet.classes import MODEL_CLASSES

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_CONFIGS",
    "Backbone",
    "ModelConfig",
    "PlumeNet",
    "SegmentationHead",
    "build_model",
    "count_parameters",
    "register_config",
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
        from transformers import Dinov2WithRegistersConfig

        return Dinov2WithRegistersConfig(**self.backbone)


# --------------------------------------------------------------------------- registry

MODEL_CONFIGS: dict[str, ModelConfig] = {}
_BUILDERS: dict[str, Callable[[], ModelConfig]] = {}


def register_config(name: str) -> Callable[[Callable[[], ModelConfig]], Callable[[], ModelConfig]]:
    """Decorator: register a builder function returning a :class:`ModelConfig`."""

    def wrap(builder: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
        config = builder()
        if config.name != name:
            raise ValueError(f"builder for {name!r} returned config named {config.name!r}")
        _BUILDERS[name] = builder
        MODEL_CONFIGS[name] = config
        return builder

    return wrap


@register_config("vits14-reg")
def vits14_reg() -> ModelConfig:
    """ViT-S/14 with 4 registers = ``facebook/dinov2-with-registers-small``; frozen."""
    return ModelConfig(
        name="vits14-reg",
        backbone={
            "hidden_size": 384,
            "num_hidden_layers": 12,
            "num_attention_heads": 6,
            "mlp_ratio": 4,
            "patch_size": 14,
            "image_size": 518,
            "num_register_tokens": 4,
            "layerscale_value": 1.0,
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
            "qkv_bias": True,
            "use_swiglu_ffn": False,
        },
        hf_backbone="facebook/dinov2-with-registers-small",
        head_hidden=64,
        input_size=518,
    )


@register_config("tiny")
def tiny() -> ModelConfig:
    """Two 32-wide layers: for offline tests only (random weights)."""
    return ModelConfig(
        name="tiny",
        backbone={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "image_size": 518,
            "num_register_tokens": 4,
        },
        hf_backbone=None,
        head_hidden=16,
        input_size=518,
    )


@register_config("demo")
def demo() -> ModelConfig:
    """Small backbone trained from scratch on synthetic scenes (CPU friendly: 224 input,
    16 x 16 grid); the architecture of the bundled demo model."""
    return ModelConfig(
        name="demo",
        backbone={
            "hidden_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "mlp_ratio": 4,
            "patch_size": 14,
            "image_size": 224,
            "num_register_tokens": 4,
        },
        hf_backbone=None,
        head_hidden=64,
        input_size=224,
        frozen_backbone=False,
    )


def _resolve_config(config: str | ModelConfig) -> ModelConfig:
    if isinstance(config, ModelConfig):
        return config
    try:
        return MODEL_CONFIGS[config]
    except KeyError:
        raise ValueError(
            f"unknown model config {config!r}; known: {', '.join(sorted(MODEL_CONFIGS))}"
        ) from None


# --------------------------------------------------------------------------- modules


class Backbone(nn.Module):
    """A ``Dinov2WithRegistersModel`` that returns the patch-token grid.

    With ``frozen=True`` (the default) parameters do not require gradients and the module
    stays in eval mode even inside a model put in training mode. Set
    :attr:`trainable` (or pass ``frozen=False``) to train it (tiny/demo backbones).
    """

    def __init__(self, model: nn.Module, *, frozen: bool = True) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self._patch_size = int(cfg.patch_size)
        self._embed_dim = int(cfg.hidden_size)
        self._num_prefix = 1 + int(getattr(cfg, "num_register_tokens", 0))
        self._num_layers = int(cfg.num_hidden_layers)
        self.frozen = frozen
        self._apply_frozen()

    # -- construction
    @classmethod
    def from_config(cls, backbone_kwargs: dict[str, Any], *, frozen: bool = True) -> Backbone:
        """Random weights from ``Dinov2WithRegistersConfig(**backbone_kwargs)`` (offline)."""
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        return cls(
            Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**backbone_kwargs)), frozen=frozen
        )

    @classmethod
    def from_pretrained(cls, repo: str, *, frozen: bool = True, **kwargs: Any) -> Backbone:
        """Weights from the hub or a local directory (``transformers`` ``from_pretrained``)."""
        from transformers import Dinov2WithRegistersModel

        return cls(Dinov2WithRegistersModel.from_pretrained(repo, **kwargs), frozen=frozen)

    # -- freezing
    @property
    def trainable(self) -> bool:
        return not self.frozen

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.frozen = not value
        self._apply_frozen()

    def _apply_frozen(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(not self.frozen)
        if self.frozen:
            self.model.eval()

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    # -- properties
    @property
    def patch_size(self) -> int:
        return self._patch_size

    @property
    def embed_dim(self) -> int:
        return self._embed_dim

    @property
    def num_layers(self) -> int:
        return self._num_layers

    def _check(self, x: torch.Tensor) -> tuple[int, int]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"backbone expects a B x 3 x H x W tensor, got shape {tuple(x.shape)}")
        h, w = int(x.shape[-2]), int(x.shape[-1])
        p = self._patch_size
        if h % p or w % p or h == 0 or w == 0:
            raise ValueError(
                f"input height and width must be positive multiples of the patch size {p}; "
                f"got {h} x {w} (resize to e.g. {max(p, round(h / p) * p)} x "
                f"{max(p, round(w / p) * p)})"
            )
        return h // p, w // p

    def _to_grid(self, tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        patches = tokens[:, self._num_prefix :, :]
        b, _, d = patches.shape
        return patches.reshape(b, gh, gw, d).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised B x 3 x H x W -> B x D x H/14 x W/14 (final layer-normed tokens)."""
        gh, gw = self._check(x)
        out = self.model(pixel_values=x)
        return self._to_grid(out.last_hidden_state, gh, gw)

    def forward_layers(
        self, x: torch.Tensor, layers: Sequence[int], *, norm: bool = True
    ) -> list[torch.Tensor]:
        """Grids from intermediate blocks, for PaDiM-style anomaly features.

        Layer ``k`` (1-based) is the output of the k-th transformer block; ``0`` is the
        embedding output and negative indices count from the end (``-1`` = last block).
        With ``norm`` (default) the backbone's final layer norm is applied, as DINOv2's
        ``get_intermediate_layers`` does.
        """
        gh, gw = self._check(x)
        n = self._num_layers
        idx = []
        for layer in layers:
            k = int(layer)
            k = k + n + 1 if k < 0 else k
            if not 0 <= k <= n:
                raise ValueError(f"layer {layer} out of range for a {n}-layer backbone")
            idx.append(k)
        out = self.model(pixel_values=x, output_hidden_states=True)
        hidden = out.hidden_states
        result = []
        for k in idx:
            tokens = hidden[k]
            if norm:
                tokens = self.model.layernorm(tokens)
            result.append(self._to_grid(tokens, gh, gw))
        return result


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


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those requiring gradients)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_model(
    config: str | ModelConfig,
    *,
    backbone: nn.Module | None = None,
    seed: int | None = None,
    pretrained: bool = False,
) -> PlumeNet:
    """Build a :class:`PlumeNet` from a registered name or a :class:`ModelConfig`.

    ``backbone`` injects any module with ``embed_dim``/``patch_size`` and a grid-returning
    forward (tests, custom backbones). Otherwise the backbone gets random weights from
    ``config.backbone`` or, with ``pretrained=True``, the weights of ``config.hf_backbone``
    (network or hub cache). ``seed`` makes random initialisation reproducible without
    touching the global RNG. The result is in eval mode.
    """
    cfg = _resolve_config(config)
    with _seeded(seed):
        if backbone is None:
            if pretrained:
                if not cfg.hf_backbone:
                    raise ValueError(f"model config {cfg.name!r} names no hf_backbone to load")
                backbone = _pretrained_backbone(cfg)
            else:
                backbone = Backbone.from_config(cfg.backbone, frozen=cfg.frozen_backbone)
        embed_dim = int(getattr(backbone, "embed_dim", cfg.backbone.get("hidden_size", 0)))
        if embed_dim <= 0:
            raise ValueError("backbone must expose a positive embed_dim")
        head = SegmentationHead(embed_dim, cfg.head_hidden, cfg.num_classes)
    model = PlumeNet(backbone, head, cfg)
    return model.eval()


def _pretrained_backbone(cfg: ModelConfig) -> Backbone:
    from plumenet.errors import WeightsError

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    cache_dir = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None
    )
    try:
        bb = Backbone.from_pretrained(
            str(cfg.hf_backbone),
            frozen=cfg.frozen_backbone,
            local_files_only=offline,
            cache_dir=cache_dir,
        )
    except OSError as err:
        raise WeightsError(
            f"cannot load backbone {cfg.hf_backbone!r} ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); download it where "
            "the network is reachable and set HF_HOME / HF_HUB_CACHE to that cache"
        ) from err
    if bb.embed_dim != cfg.backbone.get("hidden_size", bb.embed_dim):
        raise WeightsError(
            f"backbone {cfg.hf_backbone!r} has width {bb.embed_dim}, config {cfg.name!r} "
            f"expects {cfg.backbone.get('hidden_size')}"
        )
    return bb
