"""The registered PlumeNet architectures and :func:`build_model`, which builds one.

:func:`register_config` adds a builder to :data:`MODEL_CONFIGS`; :func:`build_model` turns
a registered name or a :class:`~plumenet.model.network.ModelConfig` into a
:class:`~plumenet.model.network.PlumeNet` with random or pretrained backbone weights.
Three architectures are registered:

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
from collections.abc import Callable, Iterator

import torch
from torch import nn

from plumenet.errors import WeightsError
from plumenet.model.backbone import Backbone
from plumenet.model.hub import hub_cache_dir, hub_offline
from plumenet.model.network import ModelConfig, PlumeNet, SegmentationHead

__all__ = ["MODEL_CONFIGS", "build_model", "register_config"]

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
    try:
        bb = Backbone.from_pretrained(
            str(cfg.hf_backbone),
            frozen=cfg.frozen_backbone,
            local_files_only=hub_offline(),
            cache_dir=hub_cache_dir(),
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
