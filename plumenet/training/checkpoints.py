"""Training checkpoints: the state a run needs to resume after its last finished epoch.

A checkpoint is two files in the run's folder, each written to a ``.tmp`` name first
and then moved into place: :data:`CHECKPOINT_WEIGHTS` (safetensors: the model's tensors
as ``model.<name>`` and the optimiser's per-parameter state as ``optim.<index>.<name>``)
and :data:`CHECKPOINT_STATE` (JSON: whatever state the loop passes, such as epoch,
history and best score, plus the optimiser's ``param_groups``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from plumenet.errors import ConfigError
from plumenet.model.network import PlumeNet

__all__ = ["CHECKPOINT_STATE", "CHECKPOINT_WEIGHTS", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_WEIGHTS = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint.json"


def save_checkpoint(
    out_dir: Path, model: PlumeNet, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Write ``model``, ``optimizer`` and the JSON-able ``state`` into ``out_dir``."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, pstate in opt["state"].items():
        for name, value in pstate.items():
            tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
    tensors = {k: v.clone() for k, v in tensors.items()}
    doc = dict(state)
    doc["param_groups"] = opt["param_groups"]
    tmp_w = out_dir / (CHECKPOINT_WEIGHTS + ".tmp")
    tmp_s = out_dir / (CHECKPOINT_STATE + ".tmp")
    save_file(tensors, str(tmp_w))
    tmp_s.write_text(json.dumps(doc, indent=1, allow_nan=True))
    tmp_w.replace(out_dir / CHECKPOINT_WEIGHTS)
    tmp_s.replace(out_dir / CHECKPOINT_STATE)


def load_checkpoint(
    out_dir: Path, model: PlumeNet, optimizer: torch.optim.Optimizer
) -> dict[str, Any] | None:
    """Restore ``model`` and ``optimizer`` from ``out_dir``; the saved state, or ``None``.

    ``None`` when ``out_dir`` holds no checkpoint; :class:`ConfigError` when the
    checkpoint's tensors do not fit ``model``.
    """
    w_path, s_path = out_dir / CHECKPOINT_WEIGHTS, out_dir / CHECKPOINT_STATE
    if not (w_path.is_file() and s_path.is_file()):
        return None
    doc = json.loads(s_path.read_text())
    tensors = load_file(str(w_path), device="cpu")
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as err:
        raise ConfigError(
            f"checkpoint in {out_dir} does not fit this model ({str(err).splitlines()[0]}); "
            "use another --out directory or delete the checkpoint files to start afresh"
        ) from err
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": doc.pop("param_groups")})
    return doc
