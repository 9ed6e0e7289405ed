"""Load and save PlumeNet weights: the model-directory format and :func:`load_model`.

Weight sources (``spec`` of :func:`load_model`, ``--model`` on the command line):

``demo``
    The bundled demonstration model in ``plumenet/assets/demo-model/`` (created by
    ``python -m plumenet.training.demo_model``). Everything made with it says so.
``DIR``
    A directory written by :func:`save_model`: ``model.safetensors`` (no pickle) and
    ``config.json`` (``{"format": "plumenet", "model_id", "config": ModelConfig dict,
    "weights": "full" | "head", "digest", "metadata"}``). With ``"weights": "head"`` only
    the head is stored and the backbone comes from ``config.hf_backbone``.
``FILE.ts`` / ``.pt`` / ``.pth`` (TorchScript)
    A TorchScript module taking a normalised ``B x 3 x S x S`` float batch and returning
    class logits (at input or patch-grid resolution). TorchScript runs code from the file:
    load only files you trust (a warning is logged). A ``.pt``/``.pth`` is TorchScript when
    its archive holds code; otherwise it is a state dict (next entry).
``FILE.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` (weights)
    Head-only or whole-model weights in the usual key layouts, read without unpickling
    code (``torch.load(weights_only=True)``): see :mod:`plumenet.model.weight_files`.
``hf:OWNER/REPO[@REVISION]``
    A Hugging Face hub repository (downloaded once into the hub cache; honours
    ``HF_HUB_OFFLINE``, ``HF_HOME``, ``HF_HUB_CACHE``). The snapshot may hold our own
    directory layout, a weight file (safetensors or a PyTorch state dict, head-only on
    ``facebook/dinov2-with-registers-small`` or the whole model), or a TorchScript file.
    The layout of ``SophieGif/VIGIA-PlumeNet`` could not be verified offline; these three
    layouts cover the usual ways such a model is published.

Any source that cannot be found or reached ends in one :class:`~plumenet.errors.WeightsError`
whose message says how to provide weights. This module holds the directory format
(:func:`save_model`, :func:`load_directory`) and the dispatch; TorchScript lives in
:mod:`plumenet.model.torchscript`, hub snapshots in :mod:`plumenet.model.hub`, head-only
safetensors and PyTorch checkpoints in :mod:`plumenet.model.weight_files`, and what every
loader returns
(:class:`~plumenet.model.loaded.LoadedModel`, :func:`~plumenet.model.loaded.weights_digest`)
in :mod:`plumenet.model.loaded`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from plumenet.classes import MODEL_CLASSES
from plumenet.errors import WeightsError
from plumenet.model.device import resolve_device
from plumenet.model.files import write_atomically
from plumenet.model.hub import hf_snapshot, parse_hf_spec
from plumenet.model.loaded import (
    HOW_TO_PROVIDE_WEIGHTS,
    LoadedModel,
    describe_error,
    weights_digest,
)
from plumenet.model.network import ModelConfig, PlumeNet
from plumenet.model.registry import build_model
from plumenet.model.torchscript import TORCHSCRIPT_SUFFIXES, load_torchscript
from plumenet.model.weight_files import (
    CHECKPOINT_SUFFIXES,
    is_torchscript_archive,
    load_weight_file,
)

__all__ = [
    "CONFIG_FILE",
    "DEMO_MODEL_DIR",
    "WEIGHTS_FILE",
    "load_directory",
    "load_model",
    "save_model",
]

#: Where the bundled demo model lives (created by ``python -m plumenet.training.demo_model``).
DEMO_MODEL_DIR: Path = Path(__file__).resolve().parents[1] / "assets" / "demo-model"

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "plumenet"
FORMAT_VERSION = 1


def _head_only(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("head.")}


def save_model(
    model: PlumeNet,
    directory: str | os.PathLike[str],
    *,
    model_id: str,
    metadata: dict[str, Any] | None = None,
    include_backbone: bool = True,
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory``; returns the path.

    ``metadata`` is free JSON (training data, metrics, ``{"demo": true}`` for demo models).
    With ``include_backbone=False`` only the head is written (the backbone is reloaded
    from ``config.hf_backbone``, which must then be set). Files are written atomically.
    The recorded ``digest`` is that of the full model state dict, as :func:`load_model`
    reports it.
    """
    if not model_id or not isinstance(model_id, str):
        raise ValueError("model_id must be a non-empty string")
    cfg: ModelConfig = model.config
    if not include_backbone and not cfg.hf_backbone:
        raise ValueError("include_backbone=False needs a config with hf_backbone set")
    full = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    stored = full if include_backbone else _head_only(full)
    stored = {k: v.clone() for k, v in stored.items()}  # no shared storage for safetensors
    meta = dict(metadata or {})
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "config": cfg.to_dict(),
        "classes": list(MODEL_CLASSES[: cfg.num_classes]),
        "weights": "full" if include_backbone else "head",
        "digest": weights_digest(full),
        "metadata": meta,
    }
    return write_atomically(
        directory,
        {
            WEIGHTS_FILE: lambda p: save_file(
                stored, str(p), metadata={"format": "pt", "model_id": model_id}
            ),
            CONFIG_FILE: lambda p: p.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n"),
        },
    )


def _read_config(directory: Path) -> dict[str, Any]:
    try:
        doc = json.loads((directory / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise WeightsError(
            f"{directory} holds no {CONFIG_FILE}. {HOW_TO_PROVIDE_WEIGHTS}"
        ) from None
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"cannot read {directory / CONFIG_FILE}: {describe_error(err)}") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "config" not in doc:
        raise WeightsError(
            f"{directory / CONFIG_FILE} is not a plumenet model config (expected "
            f'"format": "{FORMAT}" and a "config" entry). {HOW_TO_PROVIDE_WEIGHTS}'
        )
    return doc


def load_directory(
    directory: Path, device: torch.device, spec: str, *, is_demo: bool = False
) -> LoadedModel:
    """A directory written by :func:`save_model` -> :class:`LoadedModel` (digest checked)."""
    doc = _read_config(directory)
    try:
        cfg = ModelConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as err:
        raise WeightsError(f"invalid model config in {directory / CONFIG_FILE}: {err}") from err
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise WeightsError(f"{directory} holds no {WEIGHTS_FILE}. {HOW_TO_PROVIDE_WEIGHTS}")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"cannot read {weights_path}: {describe_error(err)}") from err
    head_only = doc.get("weights", "full") == "head"
    model = build_model(cfg, pretrained=head_only)
    try:
        if head_only:
            missing = [k for k in _head_only(model.state_dict()) if k not in state]
            model.load_state_dict(state, strict=False)
            if missing:
                raise RuntimeError(f"missing head keys {missing}")
        else:
            model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(
            f"weights in {weights_path} do not fit model config {cfg.name!r}: {describe_error(err)}"
        ) from err
    digest = weights_digest(model.state_dict())
    recorded = doc.get("digest")
    if recorded and recorded != digest:
        raise WeightsError(
            f"weights in {weights_path} do not match the digest recorded in {CONFIG_FILE} "
            f"({recorded[:12]}... != {digest[:12]}...): the files are corrupt or mixed; "
            "copy the directory again"
        )
    metadata = dict(doc.get("metadata") or {})
    model = model.to(device).eval()
    return LoadedModel(
        model=model,
        model_id=str(doc.get("model_id") or directory.name),
        digest=digest,
        backbone=cfg.hf_backbone or cfg.name,
        is_demo=is_demo or bool(metadata.get("demo", False)),
        source=spec,
        metadata=metadata,
    )


def _load_hf(spec: str, device: torch.device) -> LoadedModel:
    repo, revision = parse_hf_spec(spec)
    snap = hf_snapshot(repo, revision, spec)
    commit = snap.name
    loaded: LoadedModel | None = None
    cfg_file = snap / CONFIG_FILE
    if cfg_file.is_file() and _looks_like_ours(cfg_file):
        loaded = load_directory(snap, device, spec)
    else:
        files = sorted(p for p in snap.rglob("*") if p.is_file())
        weights = [p for p in files if p.suffix == ".safetensors"] + [
            p for p in files
            if p.suffix.lower() in CHECKPOINT_SUFFIXES and not is_torchscript_archive(p)
        ]
        scripts = [
            p for p in files if p.suffix.lower() in TORCHSCRIPT_SUFFIXES and p not in weights
        ]
        if weights:
            loaded = load_weight_file(weights[0], device, spec)
            loaded.model_id = repo
        elif scripts:
            loaded = load_torchscript(scripts[0], device, spec)
            if loaded.model_id == scripts[0].stem:  # no identity inside the file
                loaded.model_id = repo
    if loaded is None:
        names = ", ".join(sorted(p.name for p in snap.rglob("*") if p.is_file())) or "nothing"
        raise WeightsError(
            f"hub repository {repo} holds no weights plumenet can read (found: {names}). "
            f"{HOW_TO_PROVIDE_WEIGHTS}"
        )
    if loaded.model_id == snap.name or loaded.model_id in {"", "model"}:
        loaded.model_id = repo
    loaded.metadata.setdefault("hf_repo", repo)
    loaded.metadata.setdefault("hf_commit", commit)
    return loaded


def _looks_like_ours(cfg_file: Path) -> bool:
    try:
        doc = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def _load_file(path: Path, device: torch.device) -> LoadedModel:
    """One file: TorchScript, our directory's weights, or a plain weight file."""
    suffix = path.suffix.lower()
    if path.name == CONFIG_FILE or (
        suffix == ".safetensors" and _looks_like_ours(path.parent / CONFIG_FILE)
    ):
        return load_directory(path.parent, device, str(path.parent))
    if suffix in (".ts", ".torchscript") or (
        suffix in TORCHSCRIPT_SUFFIXES and is_torchscript_archive(path)
    ):
        return load_torchscript(path, device, str(path))
    if suffix == ".safetensors" or suffix in CHECKPOINT_SUFFIXES:
        return load_weight_file(path, device, str(path))
    raise WeightsError(
        f"{path} is not a model directory, weight file or TorchScript file. "
        f"{HOW_TO_PROVIDE_WEIGHTS}"
    )


def load_model(spec: str, *, device: str | torch.device | None = None) -> LoadedModel:
    """Load weights from ``demo``, ``hf:OWNER/REPO[@REV]``, a directory or a TorchScript file.

    ``device`` defaults to CUDA when available, else CPU. Raises one
    :class:`~plumenet.errors.WeightsError` (with how to fix it) for anything missing.
    """
    spec = str(spec).strip()
    if not spec:
        raise WeightsError(f"no model given. {HOW_TO_PROVIDE_WEIGHTS}")
    dev = resolve_device(device)
    if spec == "demo":
        if (
            not (DEMO_MODEL_DIR / CONFIG_FILE).is_file()
            or not (DEMO_MODEL_DIR / WEIGHTS_FILE).is_file()
        ):
            raise WeightsError(
                f"the bundled demo model is missing ({DEMO_MODEL_DIR}); create it with "
                "`python -m plumenet.training.demo_model`, or pass real weights with --model"
            )
        return load_directory(DEMO_MODEL_DIR, dev, "demo", is_demo=True)
    if spec.startswith("hf:"):
        return _load_hf(spec, dev)
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_directory(path, dev, str(path))
    if path.is_file():
        return _load_file(path, dev)
    raise WeightsError(
        f"model {spec!r} not found (no such file or directory). {HOW_TO_PROVIDE_WEIGHTS}"
    )
