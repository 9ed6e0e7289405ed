"""Load and save PlumeNet weights; every loaded model reports an id and a weights digest.

Weight sources (``spec`` of :func:`load_model`, ``--model`` on the command line):

``demo``
    The bundled demonstration model in ``plumenet/assets/demo-model/`` (created by
    ``python -m plumenet.training.demo_model``). Everything made with it says so.
``DIR``
    A directory written by :func:`save_model`: ``model.safetensors`` (no pickle) and
    ``config.json`` (``{"format": "plumenet", "model_id", "config": ModelConfig dict,
    "weights": "full" | "head", "digest", "metadata"}``). With ``"weights": "head"`` only
    the head is stored and the backbone comes from ``config.hf_backbone``.
``FILE.pt`` / ``.pth`` / ``.ts``
    A TorchScript module taking a normalised ``B x 3 x S x S`` float batch and returning
    class logits (at input or patch-grid resolution). TorchScript runs code from the file:
    load only files you trust (a warning is logged).
``hf:OWNER/REPO[@REVISION]``
    A Hugging Face hub repository (downloaded once into the hub cache; honours
    ``HF_HUB_OFFLINE``, ``HF_HOME``, ``HF_HUB_CACHE``). The snapshot may hold our own
    directory layout, a single TorchScript file, or head weights (``*.safetensors`` with
    ``head.*`` / ``conv1``/``conv2`` keys) to put on ``facebook/dinov2-with-registers-small``.
    The layout of ``SophieGif/VIGIA-PlumeNet`` could not be verified offline; these three
    layouts cover the usual ways such a model is published.

Any source that cannot be found or reached ends in one :class:`~plumenet.errors.WeightsError`
whose message says how to provide weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plumenet.classes import MODEL_CLASSES
from plumenet.errors import WeightsError
from plumenet.model.network import ModelConfig, PlumeNet, build_model

__all__ = [
    "DEMO_MODEL_DIR",
    "TORCHSCRIPT_SUFFIXES",
    "LoadedModel",
    "TorchScriptPlumeNet",
    "export_torchscript",
    "load_model",
    "save_model",
    "weights_digest",
]

log = logging.getLogger(__name__)

#: Where the bundled demo model lives (created by ``python -m plumenet.training.demo_model``).
DEMO_MODEL_DIR: Path = Path(__file__).resolve().parents[1] / "assets" / "demo-model"

#: File suffixes loaded as TorchScript.
TORCHSCRIPT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".ts", ".torchscript")

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "plumenet"
FORMAT_VERSION = 1
_TS_EXTRA = "plumenet.json"

_HOW_TO = (
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


# --------------------------------------------------------------------------- digest


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


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- save


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
    from safetensors.torch import save_file

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
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".tmp-") as tmp:
        tmp_w = Path(tmp) / WEIGHTS_FILE
        tmp_c = Path(tmp) / CONFIG_FILE
        save_file(stored, str(tmp_w), metadata={"format": "pt", "model_id": model_id})
        tmp_c.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        tmp_w.replace(out / WEIGHTS_FILE)
        tmp_c.replace(out / CONFIG_FILE)
    return out


def export_torchscript(
    model: PlumeNet,
    path: str | os.PathLike[str],
    *,
    model_id: str,
    example_batch: int = 1,
) -> Path:
    """Trace ``model.forward`` at its input size and save it as TorchScript.

    The identity (model id, config) travels in the file as an extra file so that
    :func:`load_model` can report it. The traced module works at the traced input size.
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
        _TS_EXTRA: json.dumps({"model_id": model_id, "config": model.config.to_dict()}),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(out), _extra_files=extra)
    return out


# --------------------------------------------------------------------------- torchscript


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


def _load_torchscript(path: Path, device: torch.device, spec: str) -> LoadedModel:
    log.warning(
        "loading TorchScript file %s: TorchScript executes code from the file; "
        "load only files you trust",
        path,
    )
    extra = {_TS_EXTRA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates jit
            scripted = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, OSError, ValueError) as err:
        raise WeightsError(
            f"cannot load TorchScript file {path}: {_first_line(err)}. {_HOW_TO}"
        ) from err
    info: dict[str, Any] = {}
    if extra[_TS_EXTRA]:
        try:
            info = json.loads(extra[_TS_EXTRA])
        except json.JSONDecodeError:
            info = {}
    if "config" in info:
        cfg = ModelConfig.from_dict(info["config"])
    else:
        # A TorchScript file from elsewhere: assume the published 518 x 518 ViT-S/14.
        from plumenet.model.network import MODEL_CONFIGS

        cfg = ModelConfig.from_dict(
            {**MODEL_CONFIGS["vits14-reg"].to_dict(), "name": "torchscript"}
        )
    scripted.eval()
    model = TorchScriptPlumeNet(scripted, cfg).to(device).eval()
    return LoadedModel(
        model=model,
        model_id=str(info.get("model_id") or path.stem),
        digest=_file_digest(path),
        backbone=cfg.hf_backbone or cfg.name,
        is_demo=False,
        source=spec,
        metadata={"format": "torchscript"},
    )


# --------------------------------------------------------------------------- directories


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{err.__class__.__name__}: {text.splitlines()[0]}" if text else err.__class__.__name__


def _read_config(directory: Path) -> dict[str, Any]:
    try:
        doc = json.loads((directory / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise WeightsError(f"{directory} holds no {CONFIG_FILE}. {_HOW_TO}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"cannot read {directory / CONFIG_FILE}: {_first_line(err)}") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "config" not in doc:
        raise WeightsError(
            f"{directory / CONFIG_FILE} is not a plumenet model config (expected "
            f'"format": "{FORMAT}" and a "config" entry). {_HOW_TO}'
        )
    return doc


def _load_directory(
    directory: Path, device: torch.device, spec: str, *, is_demo: bool = False
) -> LoadedModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    doc = _read_config(directory)
    try:
        cfg = ModelConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as err:
        raise WeightsError(f"invalid model config in {directory / CONFIG_FILE}: {err}") from err
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise WeightsError(f"{directory} holds no {WEIGHTS_FILE}. {_HOW_TO}")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"cannot read {weights_path}: {_first_line(err)}") from err
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
            f"weights in {weights_path} do not fit model config {cfg.name!r}: {_first_line(err)}"
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


# --------------------------------------------------------------------------- hub


def _parse_hf(spec: str) -> tuple[str, str | None]:
    body = spec[3:].strip()
    repo, _, revision = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise WeightsError(f"invalid hub spec {spec!r}: expected hf:OWNER/REPO[@REVISION]")
    return repo, revision or None


def _hub_cache_dir() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _hf_snapshot(repo: str, revision: str | None, spec: str) -> Path:
    from huggingface_hub import snapshot_download

    # Read the environment now (huggingface_hub reads it once, at import time), so that
    # HF_HUB_OFFLINE / HF_HOME / HF_HUB_CACHE set after import are still honoured.
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    cache_dir = _hub_cache_dir()
    try:
        path = snapshot_download(
            repo_id=repo,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=offline,
            allow_patterns=["*.json", "*.safetensors", "*.pt", "*.pth", "*.ts", "*.torchscript"],
        )
    except (OSError, ValueError) as err:
        cache = cache_dir or "~/.cache/huggingface/hub"
        state = (
            "HF_HUB_OFFLINE is set and the cache"
            if offline
            else "the hub is unreachable or the cache"
        )
        raise WeightsError(
            f"cannot get weights {spec!r}: {state} ({cache}) does not hold {repo} "
            f"({_first_line(err)}). Download them elsewhere (`hf download {repo} --local-dir DIR`) "
            "and pass that directory, or set HF_HOME / HF_HUB_CACHE to a cache that holds "
            "the repository."
        ) from err
    return Path(path)


def _load_hf(spec: str, device: torch.device) -> LoadedModel:
    repo, revision = _parse_hf(spec)
    snap = _hf_snapshot(repo, revision, spec)
    commit = snap.name
    loaded: LoadedModel | None = None
    cfg_file = snap / CONFIG_FILE
    if cfg_file.is_file() and _looks_like_ours(cfg_file):
        loaded = _load_directory(snap, device, spec)
    else:
        scripts = sorted(p for p in snap.rglob("*") if p.suffix in TORCHSCRIPT_SUFFIXES)
        heads = sorted(snap.rglob("*.safetensors"))
        if heads:
            loaded = _load_head_file(heads[0], device, spec)
            loaded.model_id = repo
        elif scripts:
            loaded = _load_torchscript(scripts[0], device, spec)
            if loaded.model_id == scripts[0].stem:  # no identity inside the file
                loaded.model_id = repo
    if loaded is None:
        names = ", ".join(sorted(p.name for p in snap.rglob("*") if p.is_file())) or "nothing"
        raise WeightsError(
            f"hub repository {repo} holds no weights plumenet can read (found: {names}). {_HOW_TO}"
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


_HEAD_KEY_MAP = {
    # Common names for the two head convolutions and their norm in published heads.
    "conv1": "head.conv1",
    "conv2": "head.conv2",
    "norm": "head.norm",
    "bn": "head.norm",
    "bn1": "head.norm",
    "classifier": "head.conv2",
}


def _map_head_key(key: str) -> str | None:
    if key.startswith("head."):
        return key
    for prefix in ("segmentation_head.", "decode_head.", "decoder."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    first, _, rest = key.partition(".")
    if first in _HEAD_KEY_MAP and rest:
        return f"{_HEAD_KEY_MAP[first]}.{rest}"
    return None


def _load_head_file(path: Path, device: torch.device, spec: str) -> LoadedModel:
    """Head weights (safetensors) on top of the pretrained ViT-S/14 registers backbone."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from plumenet.model.network import MODEL_CONFIGS

    try:
        raw = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"cannot read {path}: {_first_line(err)}") from err
    state = {}
    for key, value in raw.items():
        mapped = _map_head_key(key)
        if mapped is not None:
            state[mapped] = value
    if not state:
        raise WeightsError(f"{path.name} holds no segmentation-head weights plumenet recognises")
    conv1 = state.get("head.conv1.weight")
    cfg = MODEL_CONFIGS["vits14-reg"]
    if conv1 is not None:
        cfg = ModelConfig.from_dict({**cfg.to_dict(), "head_hidden": int(conv1.shape[0])})
    model = build_model(cfg, pretrained=True)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise WeightsError(f"head weights in {path.name} do not fit: {_first_line(err)}") from err
    model = model.to(device).eval()
    return LoadedModel(
        model=model,
        model_id=path.stem,
        digest=weights_digest(model.state_dict()),
        backbone=cfg.hf_backbone or cfg.name,
        is_demo=False,
        source=spec,
        metadata={"format": "head-safetensors"},
    )


# --------------------------------------------------------------------------- entry point


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(spec: str, *, device: str | torch.device | None = None) -> LoadedModel:
    """Load weights from ``demo``, ``hf:OWNER/REPO[@REV]``, a directory or a TorchScript file.

    ``device`` defaults to CUDA when available, else CPU. Raises one
    :class:`~plumenet.errors.WeightsError` (with how to fix it) for anything missing.
    """
    spec = str(spec).strip()
    if not spec:
        raise WeightsError(f"no model given. {_HOW_TO}")
    dev = _resolve_device(device)
    if spec == "demo":
        if (
            not (DEMO_MODEL_DIR / CONFIG_FILE).is_file()
            or not (DEMO_MODEL_DIR / WEIGHTS_FILE).is_file()
        ):
            raise WeightsError(
                f"the bundled demo model is missing ({DEMO_MODEL_DIR}); create it with "
                "`python -m plumenet.training.demo_model`, or pass real weights with --model"
            )
        return _load_directory(DEMO_MODEL_DIR, dev, "demo", is_demo=True)
    if spec.startswith("hf:"):
        return _load_hf(spec, dev)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_directory(path, dev, str(path))
    if path.is_file():
        if path.suffix.lower() in TORCHSCRIPT_SUFFIXES:
            return _load_torchscript(path, dev, str(path))
        if path.name == CONFIG_FILE or path.suffix == ".safetensors":
            return _load_directory(path.parent, dev, str(path.parent))
        raise WeightsError(f"{path} is not a model directory or TorchScript file. {_HOW_TO}")
    raise WeightsError(f"model {spec!r} not found (no such file or directory). {_HOW_TO}")
