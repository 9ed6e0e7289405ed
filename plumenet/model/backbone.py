"""The DINOv2-with-registers backbone wrapper: normalised images in, patch-token grids out.

:class:`Backbone` wraps ``transformers.Dinov2WithRegistersModel``: it drops the CLS and
register tokens and lays the patch tokens out as a ``D x H/14 x W/14`` grid, for the last
block (:meth:`Backbone.forward`, what the segmentation head reads) or for chosen
intermediate blocks (:meth:`Backbone.forward_layers`, what anomaly features read). It also
owns freezing (a frozen backbone stays in eval mode and has no gradients) and the rule for
layer indices (:func:`resolve_layer`: 1-based blocks, ``0`` = embeddings, negative from
the end).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

__all__ = ["Backbone", "resolve_layer"]


def resolve_layer(layer: int, num_layers: int) -> int:
    """Layer index -> ``0..num_layers``: ``0`` is the embedding output, ``k`` the k-th block.

    Negative indices count from the end (``-1`` = last block, ``-(num_layers + 1)`` = the
    embeddings); anything else is a ``ValueError``.
    """
    k = int(layer)
    k = k + num_layers + 1 if k < 0 else k
    if not 0 <= k <= num_layers:
        raise ValueError(
            f"layer {layer} out of range for a {num_layers}-layer backbone "
            f"(valid: 0..{num_layers} or -1..-{num_layers + 1})"
        )
    return k


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
        return cls(
            Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**backbone_kwargs)), frozen=frozen
        )

    @classmethod
    def from_pretrained(cls, repo: str, *, frozen: bool = True, **kwargs: Any) -> Backbone:
        """Weights from the hub or a local directory (``transformers`` ``from_pretrained``)."""
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
        idx = [resolve_layer(layer, self._num_layers) for layer in layers]
        out = self.model(pixel_values=x, output_hidden_states=True)
        hidden = out.hidden_states
        result = []
        for k in idx:
            tokens = hidden[k]
            if norm:
                tokens = self.model.layernorm(tokens)
            result.append(self._to_grid(tokens, gh, gw))
        return result
