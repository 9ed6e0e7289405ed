"""How anomaly features are drawn from a segmentation model's backbone.

PaDiM reads intermediate layers of the frozen backbone of a loaded segmentation model.
This module is that binding: :func:`unwrap_model` takes a
:class:`~plumenet.model.network.PlumeNet` or :class:`~plumenet.model.loaded.LoadedModel`
and checks it exposes intermediate layers, :func:`to_input` turns uint8 frames into the
normalised batch on the model's device, :func:`default_layers` / :func:`resolve_layers`
choose the layers, and :func:`backbone_digest` identifies the backbone so a fitted model
is only ever used with the weights it was fitted on (else :class:`AnomalyModelError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from plumenet.errors import WeightsError
from plumenet.model.backbone import resolve_layer
from plumenet.model.loaded import LoadedModel, weights_digest
from plumenet.model.network import PlumeNet

__all__ = [
    "AnomalyModelError",
    "backbone_digest",
    "default_layers",
    "resolve_layers",
    "to_input",
    "unwrap_model",
]


class AnomalyModelError(WeightsError):
    """An anomaly model cannot be read, or does not belong to the loaded backbone."""


def default_layers(num_layers: int) -> tuple[int, ...]:
    """Layers used when none are given: about one third, two thirds and the last block.

    ``12 -> (4, 8, 12)``, ``4 -> (1, 3, 4)``, ``2 -> (1, 2)`` (1-based block outputs).
    """
    if num_layers < 1:
        raise ValueError(f"a backbone needs at least one layer, got {num_layers}")
    return tuple(sorted({max(1, round(num_layers * k / 3)) for k in (1, 2, 3)}))


def resolve_layers(layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Layer indices -> non-negative block indices (see
    :func:`~plumenet.model.backbone.resolve_layer`); at least one, none twice."""
    out = [resolve_layer(layer, num_layers) for layer in layers]
    if not out:
        raise ValueError("layers must name at least one backbone layer")
    if len(set(out)) != len(out):
        raise ValueError(f"layers {list(layers)} name a layer twice")
    return tuple(out)


def backbone_digest(model: nn.Module) -> str:
    """SHA-256 of the backbone's weights (``weights_digest`` of its state dict).

    ``model`` is a :class:`~plumenet.model.network.PlumeNet` (its ``backbone`` is hashed) or a
    backbone module itself.
    """
    backbone = getattr(model, "backbone", model)
    return weights_digest(backbone.state_dict())


def unwrap_model(model: PlumeNet | LoadedModel) -> tuple[PlumeNet, dict[str, str]]:
    """The PlumeNet and its identity (model id/digest, backbone name) from either type."""
    if hasattr(model, "model") and hasattr(model, "digest"):
        net = model.model
        ident = {
            "model_id": str(model.model_id),
            "model_digest": str(model.digest),
            "backbone": str(model.backbone),
            "source": str(getattr(model, "source", "")),
        }
    else:
        net = model
        cfg = getattr(net, "config", None)
        name = getattr(cfg, "hf_backbone", None) or getattr(cfg, "name", "")
        ident = {"model_id": "", "model_digest": "", "backbone": str(name), "source": ""}
    backbone = getattr(net, "backbone", None)
    if backbone is None or not hasattr(backbone, "forward_layers"):
        raise AnomalyModelError(
            f"model {ident['model_id'] or type(net).__name__!r} exposes no backbone with "
            "intermediate layers (TorchScript models cannot be used for anomaly scores); "
            "load weights from a model directory, `hf:OWNER/REPO` or `demo`"
        )
    return net, ident


def to_input(frames: Any, net: PlumeNet) -> torch.Tensor:
    """uint8 ``N x S x S x 3`` (numpy or tensor) or a normalised ``B x 3 x H x W`` float tensor
    -> the normalised float batch on the model's device."""
    device = net.device
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise ValueError(f"numpy frames must be uint8 N x S x S x 3, got dtype {frames.dtype}")
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a numpy array or a torch tensor, got {type(frames)}")
    if frames.dtype == torch.uint8:
        if frames.dim() == 3:
            frames = frames.unsqueeze(0)
        if frames.dim() != 4 or frames.shape[-1] != 3:
            raise ValueError(f"uint8 frames must be N x S x S x 3, got {tuple(frames.shape)}")
        x = frames.to(device).permute(0, 3, 1, 2)
        return net.normalize(x)
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(
            f"float frames must be a normalised B x 3 x H x W batch, got {tuple(frames.shape)}"
        )
    return frames.to(device=device, dtype=torch.float32)
