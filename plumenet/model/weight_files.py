"""Plain weight files as people publish them: safetensors or PyTorch state-dict checkpoints.

A file (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read with
``torch.load(weights_only=True)``, which never unpickles code) holds either

- the **head** only: keys ``head.*``, or ``conv1``/``conv2``/``norm``/``bn``/``classifier``
  under an optional ``segmentation_head.``/``decode_head.``/``decoder.``/``classifier.``
  prefix; it goes on top of ``facebook/dinov2-with-registers-small`` (the ``vits14-reg``
  config, the head width read from the weights), or
- the **whole model**: the head plus ``backbone.*`` keys in our layout
  (``backbone.model.embeddings...``) or the bare Hugging Face layout
  (``backbone.embeddings...``); no backbone download is needed then.

A ``state_dict``/``model``/``model_state_dict`` wrapper and DataParallel's ``module.``
prefix are unwrapped. A ``.pth`` that is really TorchScript is recognised by its archive
(a ``code/`` folder) and left to :mod:`plumenet.model.torchscript`. When no layout
matches, one :class:`~plumenet.errors.WeightsError` lists the keys found and the shapes
expected.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from plumenet.errors import WeightsError
from plumenet.model.loaded import LoadedModel, describe_error, weights_digest
from plumenet.model.network import ModelConfig, SegmentationHead
from plumenet.model.registry import MODEL_CONFIGS, build_model

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "is_torchscript_archive",
    "load_weight_file",
    "map_head_key",
    "read_state_dict",
]

#: Suffixes of PyTorch state-dict checkpoints (a TorchScript file may share them).
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".ckpt")

_HEAD_NAMES = {
    # Common names for the two head convolutions and their norm in published heads.
    "conv1": "head.conv1",
    "conv2": "head.conv2",
    "norm": "head.norm",
    "bn": "head.norm",
    "bn1": "head.norm",
    "classifier": "head.conv2",
}
_HEAD_PREFIXES = ("segmentation_head.", "decode_head.", "decoder.", "classifier.")
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights")


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript archive (it holds code), False for a plain state-dict file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in f"/{name}" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def map_head_key(key: str) -> str | None:
    """A published head key -> ours (``head.conv1.weight``), or None when it is not the head."""
    if key.startswith("head."):
        return key
    for prefix in _HEAD_PREFIXES:
        rest = key[len(prefix) :]
        if key.startswith(prefix) and rest.partition(".")[0] in _HEAD_NAMES:
            key = rest
            break
    first, _, rest = key.partition(".")
    if first in _HEAD_NAMES and rest:
        return f"{_HEAD_NAMES[first]}.{rest}"
    return None


def _unwrap(obj: object) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise TypeError(f"holds a {type(obj).__name__}, not a state dict")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or a PyTorch checkpoint, never unpickling code."""
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path), device="cpu")
        raw = torch.load(path, map_location="cpu", weights_only=True)
        return _unwrap(raw)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError,
            pickle.UnpicklingError) as err:
        what = "safetensors weights" if path.suffix == ".safetensors" else (
            "TorchScript or a PyTorch state dict"
        )
        raise WeightsError(
            f"cannot load {what} from {path}: {describe_error(err)} — give a safetensors "
            "file, a PyTorch state dict (.pth/.pt/.bin), a TorchScript file or a model directory"
        ) from err


def _whole_model_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    backbone = {k: v for k, v in state.items() if k.startswith("backbone.")}
    if not backbone:
        return None
    out = {k: v for k, v in state.items() if k.startswith("head.")}
    for key, value in backbone.items():
        rest = key.removeprefix("backbone.")
        out[key if rest.startswith("model.") else f"backbone.model.{rest}"] = value
    return out


def _expected_shapes(cfg: ModelConfig) -> str:
    width = int(cfg.backbone.get("hidden_size", 384))
    head = SegmentationHead(width, cfg.head_hidden, cfg.num_classes)
    return ", ".join(f"head.{k} {tuple(v.shape)}" for k, v in head.state_dict().items())


def _found(state: Mapping[str, torch.Tensor], most: int = 12) -> str:
    items = [f"{k} {tuple(v.shape)}" for k, v in list(state.items())[:most]]
    more = f", ... ({len(state) - most} more)" if len(state) > most else ""
    return ", ".join(items) + more or "no tensors"


def load_weight_file(path: Path, device: torch.device, spec: str) -> LoadedModel:
    """A safetensors file or PyTorch checkpoint of the head or the whole model."""
    raw = read_state_dict(path)
    cfg = MODEL_CONFIGS["vits14-reg"]
    whole = _whole_model_state(raw)
    state = whole if whole is not None else {
        mapped: value for key, value in raw.items() if (mapped := map_head_key(key)) is not None
    }
    if "head.conv1.weight" not in state or "head.conv2.weight" not in state:
        raise WeightsError(
            f"{path.name}: no layout plumenet knows (head keys head./segmentation_head./"
            f"decoder./classifier./conv1/conv2, optionally with backbone.*). Found: "
            f"{_found(raw)}. Expected: {_expected_shapes(cfg)}"
        )
    conv1 = state["head.conv1.weight"]
    cfg = ModelConfig.from_dict({**cfg.to_dict(), "head_hidden": int(conv1.shape[0])})
    model = build_model(cfg, pretrained=whole is None)
    try:
        model.load_state_dict(state, strict=whole is not None)
    except RuntimeError as err:
        raise WeightsError(
            f"weights in {path.name} do not fit the ViT-S/14 registers model: "
            f"{describe_error(err)}. Found: {_found(raw)}. Expected: {_expected_shapes(cfg)}"
        ) from err
    model = model.to(device).eval()
    kind = "whole" if whole is not None else "head"
    return LoadedModel(
        model=model,
        model_id=path.stem,
        digest=weights_digest(model.state_dict()),
        backbone=cfg.hf_backbone or cfg.name,
        is_demo=False,
        source=spec,
        metadata={"format": f"{kind}-{'safetensors' if path.suffix == '.safetensors' else 'pth'}"},
    )
