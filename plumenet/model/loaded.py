"""What a loaded model is: :class:`LoadedModel`, its weights digest, and loader messages.

Every weight source (model directory, TorchScript file, hub snapshot, head-only
safetensors) returns a :class:`LoadedModel`: the ready :class:`~plumenet.model.network.PlumeNet`
plus the id and digest that outputs and stores record. :func:`weights_digest` is the one
definition of that digest. :data:`HOW_TO_PROVIDE_WEIGHTS` and :func:`describe_error` word
the :class:`~plumenet.errors.WeightsError` messages all loaders raise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from plumenet.model.network import PlumeNet

__all__ = ["HOW_TO_PROVIDE_WEIGHTS", "LoadedModel", "describe_error", "weights_digest"]

#: Appended to "weights not found" errors: the ways to give plumenet weights.
HOW_TO_PROVIDE_WEIGHTS = (
    "Provide weights as one of: a directory written by `plumenet train` / save_model "
    "(model.safetensors + config.json), a TorchScript file (.pt/.pth/.ts), `hf:OWNER/REPO` "
    "(download it where the network is reachable, e.g. `hf download OWNER/REPO --local-dir "
    "DIR`, then pass DIR; or set HF_HOME / HF_HUB_CACHE to a cache that holds it), or `demo`."
)


@dataclass
class LoadedModel:
    """A model ready for inference plus what identifies it in outputs and stores."""

    model: PlumeNet
    model_id: str
    digest: str
    backbone: str
    is_demo: bool = False
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return self.model.config.input_size

    def describe(self) -> dict[str, Any]:
        """JSON-friendly identity (what stores and reports record)."""
        return {
            "id": self.model_id,
            "digest": self.digest,
            "backbone": self.backbone,
            "demo": self.is_demo,
            "source": self.source,
        }


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the tensors of a state dict in sorted-key order.

    Each entry contributes its key, dtype, shape and raw bytes, so renamed, reshaped or
    re-typed weights get a different digest. Device and memory layout do not matter.
    """
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key]
        if not isinstance(t, torch.Tensor):
            continue
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def describe_error(err: BaseException) -> str:
    """``"ErrorType: first line of the message"`` (just the type when there is no message)."""
    text = str(err).strip()
    return f"{err.__class__.__name__}: {text.splitlines()[0]}" if text else err.__class__.__name__
