"""Anomaly model files: a directory holding ``padim.safetensors`` and ``padim.json``.

:func:`save_padim` writes a fitted :class:`~plumenet.anomaly.model.PadimModel` (buffers as
safetensors, configuration and backbone identity as JSON, written atomically);
:func:`load_padim` reads one back and raises
:class:`~plumenet.anomaly.features.AnomalyModelError` with how to fix it when the directory
is missing, foreign, newer than this plumenet or inconsistent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from plumenet.anomaly.features import AnomalyModelError
from plumenet.anomaly.image_score import DEFAULT_SIGMA
from plumenet.anomaly.model import FORMAT, FORMAT_VERSION, PadimModel
from plumenet.model.files import write_atomically

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_padim", "save_padim"]

WEIGHTS_FILE = "padim.safetensors"
CONFIG_FILE = "padim.json"


def save_padim(model: PadimModel, path: str | os.PathLike[str]) -> Path:
    """Write ``padim.safetensors`` (buffers) and ``padim.json`` (configuration) into ``path``."""
    if model.n_samples < 2:
        raise ValueError("refusing to save an anomaly model that was never fitted")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    doc = model.describe()
    return write_atomically(
        path,
        {
            WEIGHTS_FILE: lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}),
            CONFIG_FILE: lambda p: p.write_text(json.dumps(doc, indent=2) + "\n"),
        },
    )


def load_padim(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> PadimModel:
    """Read a directory written by :func:`save_padim`."""
    directory = Path(path).expanduser()
    how = "fit one with `plumenet anomaly fit --config ... --camera ... --out DIR`"
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise AnomalyModelError(
            f"anomaly model {directory}: expected a directory holding {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}; {how}"
        )
    try:
        doc = json.loads((directory / CONFIG_FILE).read_text())
        state = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    except (OSError, json.JSONDecodeError, SafetensorError) as err:
        raise AnomalyModelError(f"cannot read anomaly model {directory}: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AnomalyModelError(
            f"{directory / CONFIG_FILE} is not a plumenet anomaly model "
            f'(expected "format": "{FORMAT}"); {how}'
        )
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise AnomalyModelError(
            f"anomaly model {directory} has format version {doc.get('format_version')}, this "
            f"plumenet reads up to {FORMAT_VERSION}; upgrade plumenet or refit the model"
        )
    try:
        model = PadimModel(
            doc["layers"],
            doc["layer_dims"],
            tuple(doc["grid_size"]),
            int(doc["input_size"]),
            **_scoring_options(doc),
            backbone=dict(doc.get("backbone") or {}),
        )
        missing = model.load_state_dict(state, strict=False).missing_keys
        _check_keys(model, state, missing)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise AnomalyModelError(
            f"anomaly model {directory} is inconsistent ({err.__class__.__name__}: {err}); {how}"
        ) from err
    if "channels" in doc and list(doc["channels"]) != model.idx.tolist():
        raise AnomalyModelError(
            f"anomaly model {directory}: the channel subset in {CONFIG_FILE} differs from the "
            f"one in {WEIGHTS_FILE}; the files are mixed, {how}"
        )
    model.n_samples = int(doc.get("n_samples", 0))
    return model.to(device).eval()


def _scoring_options(doc: dict[str, Any]) -> dict[str, Any]:
    """Constructor options from ``padim.json``; version-1 files (before NLML and the blur)
    recorded ``"reduction": "max"`` and weighted by 1/RMS, and score as they always did."""
    mode = str(doc["mode"])
    weights = doc.get("layer_weights", "rms" if mode == "weighted" else None)
    return {
        "n_channels": int(doc["n_channels"]),
        "mode": mode,
        "distance": str(doc.get("distance", "mahalanobis")),
        "reduction": str(doc.get("reduction", "max")),
        "sigma": float(doc.get("sigma", DEFAULT_SIGMA)),
        "layer_weights": weights if weights is None or isinstance(weights, str) else list(weights),
        "seed": int(doc["seed"]),
        "eps": float(doc["eps"]),
    }


def _check_keys(model: PadimModel, state: dict[str, torch.Tensor], missing: list[str]) -> None:
    """Only the log-determinants may be missing (version-1 files): recompute them from the
    stored inverse covariances. Unexpected keys are errors."""
    unexpected = sorted(set(state) - set(model.state_dict()))
    if unexpected:
        raise ValueError(f"unexpected tensors {unexpected[:3]}")
    for key in missing:
        if not key.startswith("log_det_"):
            raise ValueError(f"missing tensor {key!r}")
        inv = getattr(model, f"inv_covariance_{key.removeprefix('log_det_')}").double()
        getattr(model, key).copy_((-torch.linalg.slogdet(inv).logabsdet).float())
