"""Pre-flight: every error the user can cause and fix, found before any work and any write.

``plumenet backfill`` / ``nightly`` and the flows call :func:`preflight` before a server,
a cluster or the store is touched. Each check raises one :class:`ConfigError` (or
:class:`StoreError`) whose message says what, where and how to fix it. Only reads happen
here, except one probe object written to and removed from a remote store's location to
prove it is writable (nothing is left behind).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import fsspec.core
import numpy as np
from PIL import Image, UnidentifiedImageError

from plumenet.errors import ConfigError, PlumenetError, StoreError
from plumenet.jobs.backfill import check_request
from plumenet.jobs.frames import is_transient
from storage.axis import CONFIG_HINT, repair_command
from storage.lease_objects import LEASE_KEY

if TYPE_CHECKING:
    import pandas as pd

    from plumenet.config import CameraConfig, ClusterConfig, Config

logger = logging.getLogger(__name__)

#: An ROI mask must be drawn on a frame: anything smaller on its short side is refused.
MIN_ROI_SIDE = 64
#: Where a remote store's writability is probed (written, then removed at once).
PROBE_NAME = ".plumenet-preflight-probe"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: Quick answers from a dead endpoint: a few seconds, not botocore's minute of retries.
_S3_PROBE_CONFIG = {"connect_timeout": 5, "read_timeout": 15, "retries": {"total_max_attempts": 2}}


def _filesystem(url: str, storage_options: dict[str, Any], what: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of ``url``; an unknown protocol is a ConfigError."""
    options = dict(storage_options)
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in ("s3", "s3a") and "config_kwargs" not in options:
        options["config_kwargs"] = _S3_PROBE_CONFIG
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ValueError, ImportError) as err:
        raise ConfigError(
            f"{what} {url}: protocol {protocol!r} is not usable ({err}) — use a local path, "
            "s3://, gs://, az:// or another installed fsspec protocol"
        ) from err
    except TypeError as err:
        raise ConfigError(
            f"{what} {url}: storage_options do not fit protocol {protocol!r} ({err}) — "
            "check `storage_options` in the config"
        ) from err
    return fs, path


def _remote_failure(url: str, what: str, err: BaseException) -> PlumenetError:
    if isinstance(err, PermissionError):
        return ConfigError(
            f"{what} {url}: access denied ({err}) — check the credentials in "
            "`storage_options` and the bucket policy"
        )
    if is_transient(err):
        return ConfigError(
            f"{what} {url}: the storage endpoint cannot be reached ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}) — check `endpoint_url` in "
            "`storage_options` and the network"
        )
    return ConfigError(f"{what} {url}: cannot be read ({type(err).__name__}: {err})")


def check_store_location(
    url: str, storage_options: dict[str, Any], config_hint: str = CONFIG_HINT
) -> None:
    """The store's location is usable: reachable, writable, and empty or a plumenet store
    (a repair command in an error names ``config_hint``, the config the run was given)."""
    fs, path = _filesystem(url, storage_options, "store")
    local = "://" not in url or url.startswith("file://")
    if local:
        _check_local_store_path(Path(path))
    else:
        bucket = path.split("/", 1)[0]
        try:
            fs.ls(bucket, detail=False)  # unlike exists(), raises when the endpoint is dead
        except FileNotFoundError as err:
            raise StoreError(
                f"store {url}: bucket {bucket!r} does not exist — create it first "
                f"(e.g. `aws s3 mb s3://{bucket}`) or fix `store` in the config"
            ) from err
        except Exception as err:  # every backend failure becomes one line
            raise _remote_failure(url, "store", err) from err
    _check_not_foreign(fs, path, url, config_hint)
    problem = None if local else _remote_write_problem(fs, path)
    if problem:
        raise StoreError(
            f"store {url}: {problem} — check the credentials' write permission on the bucket"
        )


def store_write_problem(url: str, storage_options: dict[str, Any]) -> str | None:
    """Why nothing can be written in the store (``None``: it can), proved the way
    :func:`check_store_location` proves it: for commands that also work read-only."""
    fs, path = _filesystem(url, storage_options, "store")
    if "://" not in url or url.startswith("file://"):
        return local_folder_problem(Path(path))
    return _remote_write_problem(fs, path)


def _remote_write_problem(fs: Any, path: str) -> str | None:
    """Why no object can be written under ``path`` (one probe object, removed at once)."""
    probe = f"{path.rstrip('/')}/{PROBE_NAME}-{uuid.uuid4().hex[:8]}"
    try:
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except Exception as err:  # noqa: BLE001 - every backend failure becomes one line
        return f"cannot write there ({type(err).__name__}: {err})"
    return None


def _check_local_store_path(path: Path) -> None:
    problem = local_folder_problem(path)
    if problem:
        raise StoreError(
            f"store {path}: {problem} — point `store` in the config at a new or existing "
            "plumenet.zarr folder this user can write in"
        )


def local_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as a folder to write in (``None``: it can): a file in the
    way, itself or above it, or the nearest existing folder not writable."""
    if path.exists() and not path.is_dir():
        return "is a file, not a directory"
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, so no folder can be created under it"
    return _write_problem(ancestor, "the folder" if ancestor == path else str(ancestor))


def _write_problem(folder: Path, shown: str) -> str | None:
    """Why nothing can be written in the existing ``folder`` (``None``: it can); ``shown``
    names it in the message."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{shown} is not writable by this user"
    # os.access trusts the mode bits (always true for root); make and remove a folder there
    try:
        Path(tempfile.mkdtemp(prefix=PROBE_NAME, dir=folder)).rmdir()
    except OSError as err:
        return f"cannot write in {shown} ({err.strerror or err})"
    return None


def output_file_problem(path: Path) -> str | None:
    """Why a report file cannot be written at ``path`` (``None``: it can), found without
    writing it: an existing file stays as it is until the command has its result."""
    if path.is_dir():
        return "is a directory, not a file"
    folder = path.parent
    if not folder.exists():
        return f"folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if path.exists():
        try:
            path.open("ab").close()  # opened for appending, nothing written: mtime unchanged
        except OSError as err:
            return f"cannot be written ({err.strerror or err})"
        return None
    return _write_problem(folder, f"folder {folder}")


def check_output_folder(path: str, option: str) -> None:
    """A folder a command writes into (``synth --out``) can be made and written in, before
    any file is (remote URLs are left to their writer)."""
    if "://" in path:
        return
    problem = local_folder_problem(Path(path).expanduser())
    if problem:
        raise ConfigError(
            f"{option} {path}: {problem} — give a new or existing folder this user can write in"
        )


def check_output_file(path: str | None, option: str) -> None:
    """A ``--json`` / ``--csv`` file can be written, checked before the command's work so a
    cron run never ends in a traceback after it (remote URLs are left to their writer)."""
    if not path or "://" in path:
        return
    problem = output_file_problem(Path(path).expanduser())
    if problem:
        raise ConfigError(
            f"{option} {path}: {problem} — give a file in an existing folder this user can write in"
        )


def _entries(fs: Any, path: str) -> list[str]:
    """What the store location holds, less the store lease."""
    return [p for p in fs.ls(path, detail=False) if p.rstrip("/").rsplit("/", 1)[-1] != LEASE_KEY]


def _check_not_foreign(fs: Any, path: str, url: str, config_hint: str) -> None:
    """An existing location holds a plumenet store or nothing at all."""
    root_meta = f"{path.rstrip('/')}/zarr.json"
    try:
        # the store lease (storage.lease) is there before the root while a driver starts
        exists = fs.exists(path) and bool(_entries(fs, path))
        raw = fs.cat_file(root_meta) if exists and fs.exists(root_meta) else None
    except Exception as err:  # every backend failure becomes one line
        raise _remote_failure(url, "store", err) from err
    if not exists:
        return
    foreign = (
        f"store {url}: holds something that is not a plumenet store — point `store` at a new "
        "location or at a store plumenet wrote"
    )
    if raw is None:
        raise StoreError(f"{foreign} (no zarr.json at its root)")
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise StoreError(
            f"store {url}: its root zarr.json is not valid JSON ({err}) — run "
            f"{repair_command(config_hint)} to rewrite it, or restore it from a backup"
        ) from err
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
        raise StoreError(f"{foreign} (not a Zarr v3 store)")
    if meta.get("node_type") != "group":
        raise StoreError(f"{foreign} (its root is a Zarr array, not a group)")
    attrs = meta.get("attributes") or {}
    if "schema_version" not in attrs and _entries(fs, path) != [root_meta]:
        raise StoreError(f"{foreign} (a Zarr group without plumenet's schema_version)")


def check_archive(camera: CameraConfig, storage_options: dict[str, Any]) -> None:
    """The camera's archive root exists and can be listed."""
    fs, path = _filesystem(camera.archive, storage_options, f"camera {camera.id!r}: archive")
    try:
        ok = fs.isdir(path)
    except Exception as err:  # every backend failure becomes one line
        raise _remote_failure(camera.archive, f"camera {camera.id!r}: archive", err) from err
    if not ok:
        raise ConfigError(
            f"camera {camera.id!r}: archive {camera.archive} does not exist or is not a folder "
            "— fix `archive` in the config (or mount the archive)"
        )


def check_roi(camera: CameraConfig, storage_options: dict[str, Any]) -> None:
    """The ROI mask is a readable image of a frame's size with some pixels inside."""
    if not camera.roi:
        return
    where = f"camera {camera.id!r}: roi {camera.roi}"
    try:
        with fsspec.open(camera.roi, "rb", **storage_options) as fh:
            data = fh.read()
    except FileNotFoundError as err:
        raise ConfigError(f"{where} not found — fix `roi` or remove it") from err
    except Exception as err:  # every backend failure becomes one line
        raise _remote_failure(str(camera.roi), f"camera {camera.id!r}: roi", err) from err
    try:
        with Image.open(io.BytesIO(data)) as img:
            mask = np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ConfigError(
            f"{where} is not an image — save the mask as a PNG (white inside the ROI)"
        ) from err
    if min(mask.shape) < MIN_ROI_SIDE:
        raise ConfigError(
            f"{where} is {mask.shape[1]}x{mask.shape[0]} px, too small to match a frame (it "
            f"would be stretched) — draw it on a full-size frame (at least {MIN_ROI_SIDE} px)"
        )
    if not mask.any():
        raise ConfigError(
            f"{where} is all black, so no pixel would be analysed — white marks the ROI"
        )


def check_anomaly_model(
    camera: CameraConfig, storage_options: dict[str, Any] | None = None
) -> None:
    """The camera's anomaly model exists and loads."""
    if not camera.anomaly_model:
        return
    where = f"camera {camera.id!r}: anomaly_model"
    fs, path = _filesystem(camera.anomaly_model, storage_options or {}, where)
    if not fs.exists(path):
        raise ConfigError(
            f"{where} {camera.anomaly_model} not found — fit one with `plumenet anomaly fit` "
            "or fix the path"
        )
    # torch: only when a camera has an anomaly model (the driver checks it once, on CPU)
    from plumenet.anomaly.files import load_padim  # noqa: PLC0415

    try:
        load_padim(camera.anomaly_model)
    except PlumenetError as err:
        raise ConfigError(f"camera {camera.id!r}: anomaly_model: {err}") from err
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ConfigError(
            f"camera {camera.id!r}: anomaly_model {camera.anomaly_model} cannot be loaded "
            f"({type(err).__name__}: {err}) — fit one with `plumenet anomaly fit`"
        ) from err


def check_options(batch_size: int, device: str | None) -> None:
    """CLI and flow values that no worker should be the first to reject."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size} must be at least 1, e.g. 16")
    if device is not None and not _DEVICE.match(device):
        raise ConfigError(
            f"--device {device!r} is not a device: use cpu, cuda, cuda:N, mps or auto"
        )


def check_device_here(device: str | None, cluster: ClusterConfig | None) -> None:
    """A GPU device asked of a local cluster must exist on this machine (its workers run
    here); remote workers are not second-guessed from the driver."""
    if device in (None, "auto", "cpu") or (cluster is not None and cluster.kind != "local"):
        return
    # only for a GPU device on this machine, which loads torch anyway
    from plumenet.model.device import check_device  # noqa: PLC0415

    check_device(
        device,
        fix="leave --device out (auto), or run on GPU workers (--cluster local-cuda on a "
        "GPU machine, or a scheduler with GPU workers)",
    )


def preflight(
    config: Config,
    start: pd.Timestamp,
    end: pd.Timestamp,
    cameras: list[str] | None = None,
    *,
    batch_size: int = 16,
    device: str | None = None,
    cluster: ClusterConfig | None = None,
) -> None:
    """Every check of a backfill's inputs, in the order a user would fix them (``cluster``:
    the resolved cluster, which says whether the device must exist here)."""
    check_options(batch_size, device)
    check_device_here(device, cluster)
    check_request(config, start, end, cameras)
    selected = [config.camera(c) for c in cameras] if cameras else list(config.cameras)
    for camera in selected:
        check_archive(camera, config.storage_options)
        check_roi(camera, config.storage_options)
        check_anomaly_model(camera, config.storage_options)
    check_store_location(config.store, config.storage_options, config.source)
