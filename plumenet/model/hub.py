"""The Hugging Face hub as a weight source: cache settings, ``hf:`` specs and snapshots.

The settings are read from the environment on every call (``huggingface_hub`` reads it
once, at import time), so ``HF_HUB_OFFLINE`` / ``HF_HOME`` / ``HF_HUB_CACHE`` set after
import are still honoured: :func:`hub_offline` and :func:`hub_cache_dir` serve both the
backbone download (``transformers``) and weight snapshots (:func:`hf_snapshot`).
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import snapshot_download

from plumenet.errors import WeightsError
from plumenet.model.loaded import describe_error

__all__ = [
    "SNAPSHOT_PATTERNS",
    "hf_snapshot",
    "hub_cache_dir",
    "hub_offline",
    "parse_hf_spec",
]

#: Files a weight snapshot downloads (configs, safetensors, TorchScript).
SNAPSHOT_PATTERNS: tuple[str, ...] = (
    "*.json",
    "*.safetensors",
    "*.pt",
    "*.pth",
    "*.ts",
    "*.torchscript",
)


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for the local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_cache_dir() -> str | None:
    """``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``None`` (the library's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """``hf:OWNER/REPO[@REVISION]`` -> ``(OWNER/REPO, REVISION or None)``."""
    body = spec[3:].strip()
    repo, _, revision = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise WeightsError(f"invalid hub spec {spec!r}: expected hf:OWNER/REPO[@REVISION]")
    return repo, revision or None


def hf_snapshot(repo: str, revision: str | None, spec: str) -> Path:
    """The local snapshot directory of ``repo`` (downloaded once into the hub cache)."""
    offline = hub_offline()
    cache_dir = hub_cache_dir()
    try:
        path = snapshot_download(
            repo_id=repo,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=offline,
            allow_patterns=list(SNAPSHOT_PATTERNS),
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
            f"({describe_error(err)}). Download them elsewhere (`hf download {repo} --local-dir "
            "DIR`) and pass that directory, or set HF_HOME / HF_HUB_CACHE to a cache that "
            "holds the repository."
        ) from err
    return Path(path)
