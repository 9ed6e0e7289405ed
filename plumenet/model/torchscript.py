"""TorchScript as a weight format: export a PlumeNet, load a scripted file as one.

:func:`export_torchscript` traces a model at its input size and stores its identity (model
id, config) inside the file; :func:`load_torchscript` reads such a file, or one made
elsewhere, and wraps it in :class:`TorchScriptPlumeNet` so inference sees the ordinary
:class:`~plumenet.model.network.PlumeNet` forward contract. TorchScript executes code
from the file: load only files you trust (a warning is logged).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plumenet.errors import WeightsError
from plumenet.model.files import file_digest
from plumenet.model.loaded import HOW_TO_PROVIDE_WEIGHTS, LoadedModel, describe_error
from plumenet.model.network import ModelConfig, PlumeNet
from plumenet.model.registry import MODEL_CONFIGS

__all__ = ["TORCHSCRIPT_SUFFIXES", "TorchScriptPlumeNet", "export_torchscript", "load_torchscript"]

log = logging.getLogger(__name__)

#: File suffixes loaded as TorchScript.
TORCHSCRIPT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".ts", ".torchscript")

#: Extra file inside an exported module holding its identity (model id, config).
IDENTITY_FILE = "plumenet.json"


def export_torchscript(
    model: PlumeNet,
    path: str | os.PathLike[str],
    *,
    model_id: str,
    example_batch: int = 1,
) -> Path:
    """Trace ``model.forward`` at its input size and save it as TorchScript.

    The identity (model id, config) travels in the file as an extra file so that
    :func:`~plumenet.model.weights.load_model` can report it. The traced module works at
    the traced input size.
    """
    size = model.config.input_size
    example = torch.zeros(example_batch, 3, size, size, device=model.device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates jit
        warnings.simplefilter("ignore", FutureWarning)  # transformers, during tracing
        traced = torch.jit.trace(model, example, check_trace=False)
    model.train(was_training)
    extra = {
        IDENTITY_FILE: json.dumps({"model_id": model_id, "config": model.config.to_dict()}),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(out), _extra_files=extra)
    return out


class TorchScriptPlumeNet(PlumeNet):
    """Wraps a TorchScript module in the :class:`PlumeNet` forward contract.

    The scripted module takes a normalised float batch. If it returns logits at input
    resolution, :meth:`forward_grid` average-pools them to the patch grid; if it returns
    patch-grid logits, :meth:`forward` upsamples them bilinearly.
    """

    def __init__(self, scripted: torch.jit.ScriptModule, config: ModelConfig) -> None:
        super().__init__(nn.Identity(), nn.Identity(), config)
        self.scripted = scripted

    @property
    def device(self) -> torch.device:
        for t in self.scripted.parameters():
            return t.device
        for t in self.scripted.buffers():
            return t.device
        return self.mean.device

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scripted(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = out.get("logits", next(iter(out.values())))
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise WeightsError(
                "the TorchScript model did not return a B x C x H x W logits tensor; "
                f"got {type(out).__name__}"
            )
        return out

    def forward_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._run(x)
        p = self.config.patch_size
        grid_hw = (x.shape[-2] // p, x.shape[-1] // p)
        if tuple(out.shape[-2:]) == tuple(x.shape[-2:]):
            return F.adaptive_avg_pool2d(out, grid_hw), out
        full = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out, full

    def forward_grid(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_outputs(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_outputs(x)[1]


def load_torchscript(path: Path, device: torch.device, spec: str) -> LoadedModel:
    """A TorchScript file -> :class:`~plumenet.model.loaded.LoadedModel` (digest of the file).

    Without an identity inside the file the published 518 x 518 ViT-S/14 config is assumed
    and checked by one forward pass now: a file traced at another size would otherwise fail
    with a TorchScript traceback in the middle of a run.
    """
    log.warning(
        "loading TorchScript file %s: TorchScript executes code from the file; "
        "load only files you trust",
        path,
    )
    extra = {IDENTITY_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates jit
            scripted = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, OSError, ValueError) as err:
        raise WeightsError(
            f"cannot load TorchScript file {path}: {describe_error(err)}. {HOW_TO_PROVIDE_WEIGHTS}"
        ) from err
    info: dict[str, Any] = {}
    if extra[IDENTITY_FILE]:
        try:
            info = json.loads(extra[IDENTITY_FILE])
        except json.JSONDecodeError:
            info = {}
    if "config" in info:
        cfg = ModelConfig.from_dict(info["config"])
    else:
        # A TorchScript file from elsewhere: assume the published 518 x 518 ViT-S/14.
        cfg = ModelConfig.from_dict(
            {**MODEL_CONFIGS["vits14-reg"].to_dict(), "name": "torchscript"}
        )
    scripted.eval()
    model = TorchScriptPlumeNet(scripted, cfg).to(device).eval()
    if "config" not in info:
        _probe(model, path)
    return LoadedModel(
        model=model,
        model_id=str(info.get("model_id") or path.stem),
        digest=file_digest(path),
        backbone=cfg.hf_backbone or cfg.name,
        is_demo=False,
        source=spec,
        metadata={"format": "torchscript"},
    )


def _probe(model: TorchScriptPlumeNet, path: Path) -> None:
    """Run a file without identity once at the assumed input size; a mismatch is a
    :class:`WeightsError` naming the size, not a TorchScript traceback mid-run."""
    cfg = model.config
    size, classes = cfg.input_size, cfg.num_classes
    fix = (
        f"trace it at {size} x {size} with {classes} output classes, or export it with "
        "plumenet.model.torchscript.export_torchscript, which records its input size"
    )
    x = torch.zeros(1, 3, size, size, device=model.device)
    try:
        with torch.inference_mode():
            out = model.forward(x)
    except RuntimeError as err:  # torch.jit errors are RuntimeErrors
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[-1] if lines else err.__class__.__name__
        raise WeightsError(
            f"TorchScript file {path} records no plumenet identity and does not run at the "
            f"assumed {size} x {size} input ({reason}); {fix}"
        ) from err
    if out.shape[1] != classes:
        raise WeightsError(
            f"TorchScript file {path} returns {out.shape[1]} classes, not the {classes} "
            f"plumenet classes; {fix}"
        )
