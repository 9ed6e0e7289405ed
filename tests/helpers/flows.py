"""Helpers for the flow tests: configs, real Dask processes, store snapshots."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
import zarr

from storage.layouts import BUILTIN_TEMPLATES

#: Arrays whose bytes must equal a clean run's after any kill / rerun.
DATA_VARS = ("fraction", "probability", "frame_time", "source", "brightness", "status", "model")


def write_config(
    out: Path,
    *,
    archive: Any,
    model: str,
    cadence: str,
    start: str,
    camera: str = "FLOW",
    template: str = "flat",
    fields: dict[str, str] | None = None,
    store: str | None = None,
    storage_options: dict[str, Any] | None = None,
    unit: str | None = "1D",
) -> Path:
    cfg = {
        "store": store or str(Path(out) / "plumenet.zarr"),
        "model": model,
        "storage_options": storage_options or {},
        "cameras": [
            {
                "id": camera,
                "archive": str(archive),
                "template": BUILTIN_TEMPLATES.get(template, template),
                "fields": fields or {"CAM": "flowcam"},
                "timezone": "UTC",
                "cadence": cadence,
                "grid_start": start,
                **({"unit": unit} if unit else {}),
            }
        ],
    }
    path = Path(out) / "cameras.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def read_arrays(
    store: Any, camera: str, storage_options: dict | None = None
) -> dict[str, np.ndarray]:
    """Raw (encoded) arrays of one camera, read with zarr: what is on disk, not decoded."""
    group = zarr.open_group(str(store), mode="r", storage_options=storage_options)[camera]
    return {name: group[name][:] for name in DATA_VARS}


def chunk_snapshot(store: Any, *, content: bool = False) -> dict[str, Any]:
    """mtime (and bytes) of every chunk file of a local store; metadata files excluded."""
    root = Path(store)
    snap = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in {"zarr.json", ".zmetadata"}:
            stat = path.stat()
            key = str(path.relative_to(root))
            snap[key] = (stat.st_mtime_ns, path.read_bytes()) if content else stat.st_mtime_ns
    return snap


def wait_for_status(
    store: Any, camera: str, *, minimum: int, timeout: float, allow_timeout: bool = False
) -> int:
    """Poll the store until ``minimum`` slots have a status (i.e. a unit finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = zarr.open_group(str(store), mode="r")[camera]["status"][:]
            done = int((status != 0).sum())
            if done >= minimum:
                return done
        except (KeyError, FileNotFoundError, ValueError):
            pass
        time.sleep(0.2)
    if allow_timeout:
        return 0
    raise TimeoutError(f"no unit of {camera} reached {store} within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dask_cluster(
    *, n_workers: int, env: dict[str, str], log_dir: Path
) -> tuple[str, list[subprocess.Popen]]:
    """`dask scheduler` and ``n_workers`` `dask worker` processes on 127.0.0.1."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    bindir = Path(sys.executable).parent
    procs = [
        subprocess.Popen(
            [str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"],
            env=env, stdout=open(log_dir / "scheduler.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
    ]  # fmt: skip
    for i in range(n_workers):
        procs.append(
            subprocess.Popen(
                [str(bindir / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                env=env, stdout=open(log_dir / f"worker{i}.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            )
        )  # fmt: skip
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(n_workers, timeout=60)
            break
        except OSError:
            if time.monotonic() > deadline:
                stop_processes(procs)
                raise
            time.sleep(0.5)
    return address, procs


def stop_processes(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
