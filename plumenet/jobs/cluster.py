"""Which Dask cluster a backfill runs on: from the config's ``cluster:`` section, the CLI or
a flow parameter, checked before anything starts.

Plain functions over :class:`plumenet.config.ClusterConfig`; ``flows.pipeline`` turns the
result into a ``DaskTaskRunner``. A cluster is reached one of five ways: ``local`` (a
``LocalCluster`` sized by ``workers`` / ``threads_per_worker`` / ``memory_limit``, its
workers threads of the driver's process or processes of their own),
``local-cuda``, a scheduler address, a scheduler file (as ``dask scheduler --scheduler-file``
writes it) or a ``cluster_class`` named by its import path with ``cluster_kwargs`` (e.g.
``dask_jobqueue.SLURMCluster``), optionally scaled with ``adapt``.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dask.config
from pydantic import ValidationError

from plumenet.config import ClusterConfig
from plumenet.errors import ConfigError
from plumenet.timeutil import is_bare_number

#: Threads per worker process of the default local cluster (torch takes the cores itself).
LOCAL_THREADS_PER_WORKER = 1
#: Tasks (one unit, or a group on GPU workers) dispatched at once per worker thread when
#: ``max_in_flight`` is not set.
IN_FLIGHT_PER_THREAD = 2

ClusterLike = str | dict[str, Any] | ClusterConfig | None


def parse_cluster(value: str) -> dict[str, Any]:
    """A ``--cluster`` string as a ``cluster:`` section.

    ``local`` / ``local-cuda`` / ``tcp://host:8786`` (any ``scheme://``) -> ``address``;
    a path ending in ``.json`` -> ``scheduler_file``; a dotted import path whose last part
    is a class name (``distributed.LocalCluster``) -> ``cluster_class``.
    """
    text = value.strip()
    if text in ("local", "local-cuda") or "://" in text:
        return {"address": text}
    if text.endswith(".json"):
        return {"scheduler_file": text}
    module, _, name = text.rpartition(".")
    if module and name[:1].isupper() and all(p.isidentifier() for p in text.split(".")):
        return {"cluster_class": text}
    raise ConfigError(
        f"unknown cluster {value!r}: use 'local', 'local-cuda', a scheduler address such as "
        "tcp://host:8786, a scheduler file (*.json) or a cluster class such as "
        "dask_jobqueue.SLURMCluster"
    )


def resolve_cluster(configured: ClusterConfig, override: ClusterLike = None) -> ClusterConfig:
    """The cluster a run uses: ``override`` (CLI / flow parameter) wins over the config.

    A string override replaces the config's way of reaching workers but keeps its sizing
    and bound where they still apply; a dict is a whole ``cluster:`` section.
    """
    if override is None:
        spec = configured
    elif isinstance(override, ClusterConfig):
        spec = override
    else:
        if isinstance(override, str):
            kept = {
                k: v
                for k, v in configured.model_dump(exclude_defaults=True).items()
                if k in ("max_in_flight", "frames_per_task", "gpu")
            }
            raw: dict[str, Any] = {**kept, **parse_cluster(override)}
        else:
            raw = dict(override)
        try:
            spec = ClusterConfig.model_validate(raw)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            what = first["ctx"]["error"] if "ctx" in first else first["msg"]
            raise ConfigError(f"cluster {where or 'settings'}: {what}") from err
    check_cluster(spec)
    return spec


def check_cluster(spec: ClusterConfig) -> ClusterConfig:
    """Fail before any server or worker starts: missing extras, unimportable classes, files."""
    if spec.kind == "local-cuda":
        try:
            importlib.import_module("dask_cuda")
        except ImportError as err:
            raise ConfigError(
                "cluster local-cuda needs dask-cuda: install it with `pip install "
                "'plumenet[gpu]'` on a machine with NVIDIA GPUs"
            ) from err
    if spec.kind == "cluster_class":
        module, _, name = str(spec.cluster_class).rpartition(".")
        try:
            found = getattr(importlib.import_module(module), name, None) if module else None
        except ImportError as err:
            raise ConfigError(
                f"cluster_class {spec.cluster_class!r}: cannot import {module!r} ({err}) — "
                "install the package that provides it (e.g. dask-jobqueue)"
            ) from err
        if found is None:
            raise ConfigError(
                f"cluster_class {spec.cluster_class!r}: no {name!r} in {module or '(none)'!r} "
                "— give the full import path, e.g. dask_jobqueue.SLURMCluster"
            )
    if spec.memory_limit is not None and spec.memory_limit != "auto":
        memory_limit_bytes(spec.memory_limit)
    if spec.kind == "scheduler_file":
        check_scheduler_answers(scheduler_address(spec), f"scheduler file {spec.scheduler_file}")
    if spec.kind == "address":
        check_scheduler_answers(str(spec.address), "--cluster / the config's cluster.address")
    return spec


#: The smallest ``memory_limit`` accepted: a worker with torch and the model loaded needs
#: more, and under it Dask restarts the worker over and over instead of failing.
MIN_MEMORY_LIMIT = 256 * 2**20
_MEMORY_WHERE = "--memory-limit, or cluster.memory_limit in the config"


def memory_limit_bytes(text: str) -> int:
    """A worker's ``memory_limit`` in bytes, refused in one line when Dask would take it
    for something absurd: a bare number (``8`` is 8 bytes to Dask) or under 256 MiB."""
    from dask.utils import format_bytes, parse_bytes  # noqa: PLC0415 - only when a limit is given

    if is_bare_number(text):
        raise ConfigError(
            f"memory_limit {text!r} has no unit, so Dask would read {text.strip()} bytes "
            f"({_MEMORY_WHERE}) — give one, e.g. 8GiB, 16GB or auto"
        )
    try:
        amount = parse_bytes(text)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"memory_limit {text!r} is not an amount of memory ({_MEMORY_WHERE}) — give one "
            "such as 8GiB, 16GB or auto"
        ) from err
    if amount < MIN_MEMORY_LIMIT:
        raise ConfigError(
            f"memory_limit {text!r} is {format_bytes(amount)} per worker, under the 256 MiB a "
            f"worker needs: Dask would restart it over and over ({_MEMORY_WHERE}) — give at "
            "least 256MiB, e.g. 8GiB or auto"
        )
    return amount


#: Seconds a scheduler has to accept a TCP connection before the run is refused.
SCHEDULER_PROBE_S = 5.0


def check_scheduler_answers(address: str, source: str) -> None:
    """Refuse a run whose scheduler does not accept a TCP connection, in one line and at
    once (Dask's client would try for 30 s and end in four tracebacks). Only plain
    ``tcp://`` addresses (or ``host:port``) are probed; TLS and other protocols are left to
    Dask."""
    url = urlsplit(address if "://" in address else f"tcp://{address}")
    if url.scheme != "tcp":
        return
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ConfigError(
            f"scheduler address {address!r} (from {source}) has no host:port — give one such "
            "as tcp://scheduler-host:8786"
        )
    try:
        socket.create_connection((host, port), timeout=SCHEDULER_PROBE_S).close()
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise ConfigError(
            f"no Dask scheduler answers at {address} ({why}; from {source}) — start it "
            "(`dask scheduler`) or fix the address"
        ) from err


def scheduler_address(spec: ClusterConfig) -> str:
    """The address in a scheduler file (``dask scheduler --scheduler-file FILE``)."""
    path = Path(str(spec.scheduler_file)).expanduser()
    try:
        address = json.loads(path.read_text())["address"]
    except FileNotFoundError as err:
        raise ConfigError(
            f"scheduler file {path} not found — start the scheduler with "
            f"`dask scheduler --scheduler-file {path}` first, or fix the path"
        ) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"scheduler file {path} holds no scheduler address ({type(err).__name__}) — "
            "give the file `dask scheduler --scheduler-file` wrote"
        ) from err
    return str(address)


#: Dask settings for the workers plumenet starts itself (local, local-cuda). Dask's
#: statistical profiler samples every thread's stack every 10 ms, holding the GIL; next to a
#: CPU model on 2 cores that cost 4-6 % of inference (docs/BENCHMARKS.md, "Pipeline").
WORKER_DASK_CONFIG: dict[str, Any] = {"distributed": {"worker": {"profile": {"enabled": False}}}}

#: Preloaded by those workers, after any the user configured: imports torch and the model
#: stack in a thread while the worker starts (``plumenet.jobs.warmup``).
WORKER_PRELOAD = "plumenet.jobs.warmup"


def worker_config() -> dict[str, Any]:
    """This process's Dask config with :data:`WORKER_DASK_CONFIG` on top and
    :data:`WORKER_PRELOAD` added to the worker preloads, for a ``Nanny``'s ``config``
    (which it merges one level deep only: the whole ``distributed`` tree goes)."""
    import distributed  # noqa: F401, PLC0415 - loads its config defaults; heavy for the CLI

    config = {"distributed": copy.deepcopy(dask.config.get("distributed"))}
    config = dask.config.update(config, WORKER_DASK_CONFIG)
    worker = config["distributed"]["worker"]
    preload = worker.get("preload") or []
    preload = [preload] if isinstance(preload, str) else list(preload)
    if WORKER_PRELOAD not in preload:
        argv = worker.get("preload-argv") or []
        if argv and not isinstance(argv[0], str):  # one argv per preload: ours takes none
            worker["preload-argv"] = [*argv, []]
        worker["preload"] = [*preload, WORKER_PRELOAD]
    return config


def local_workers(spec: ClusterConfig) -> int:
    """Workers of a local cluster: ``workers``, else a quarter of the cores (1 to 4)."""
    return spec.workers or max(1, min(4, (os.cpu_count() or 1) // 4))


def workers_in_process(spec: ClusterConfig) -> bool:
    """Whether a local cluster's workers are threads of the driver's process.

    ``processes`` decides when given. By default one worker (the size on fewer than 8 cores)
    without ``memory_limit`` or ``adapt`` runs in the driver: torch and Pillow release the
    GIL, and a second process costs its start with torch and the model stack (~4 s), its own
    Dask worker and nanny beside the model on the same cores, and a second copy of the model
    in memory: 0.86-0.88 x -> 0.92-0.93 x of the model alone on a 10-day run of a 2-core
    machine (docs/BENCHMARKS.md, "Pipeline"). Worker processes keep a crash or a leak in one unit
    away from the driver, and are what several workers and a memory limit need.
    """
    if spec.processes is not None:
        return not spec.processes
    return local_workers(spec) == 1 and not spec.memory_limit and spec.adapt is None


def local_cluster_kwargs(spec: ClusterConfig, threads_env: str) -> dict[str, Any]:
    """``LocalCluster`` arguments: workers sized to this machine unless given, in the
    driver's process or in their own (:func:`workers_in_process`)."""
    workers = local_workers(spec)
    threads = spec.threads_per_worker or LOCAL_THREADS_PER_WORKER
    kwargs: dict[str, Any] = {
        "n_workers": workers,
        "threads_per_worker": threads,
        "processes": not workers_in_process(spec),
        "dashboard_address": None,
    }
    if kwargs["processes"]:  # what the nanny gives each worker process
        n_cpu = os.cpu_count() or 1
        kwargs["env"] = {threads_env: str(max(1, n_cpu // workers))}
        kwargs["config"] = worker_config()
    if spec.memory_limit:
        kwargs["memory_limit"] = spec.memory_limit
    return kwargs


def in_flight_bound(spec: ClusterConfig, worker_threads: int) -> int:
    """Tasks dispatched at once: ``max_in_flight``, else 2 per worker thread (at least 2).

    An adaptive cluster may start with no workers: its ``adapt.maximum`` sizes the bound.
    """
    if spec.max_in_flight:
        return spec.max_in_flight
    threads = worker_threads
    if spec.adapt is not None:
        threads = max(threads, spec.adapt.maximum * (spec.threads_per_worker or 1))
    return max(2, IN_FLIGHT_PER_THREAD * threads)


def wants_gpu(spec: ClusterConfig, worker_resources: list[dict[str, float]]) -> bool:
    """Annotate units with a ``GPU`` resource: ``gpu`` if set, else for ``local-cuda`` or
    when any worker offers a ``GPU`` resource (units then never land on CPU-only workers)."""
    if spec.gpu is not None:
        return spec.gpu
    if spec.kind == "local-cuda":
        return True
    return any(r.get("GPU", 0) > 0 for r in worker_resources)


def cluster_from_options(
    configured: ClusterConfig,
    *,
    cluster: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | None = None,
    processes: bool | None = None,
    cluster_kwargs: str | None = None,
    adapt: str | None = None,
    max_in_flight: int | None = None,
) -> dict[str, Any] | None:
    """The CLI's cluster options over the config's ``cluster:`` section, as a whole section
    (``None`` when no option is given: the flow then reads the config itself)."""
    given = {
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "memory_limit": memory_limit,
        "processes": processes,
        "max_in_flight": max_in_flight,
    }
    extra: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if cluster_kwargs is not None:
        try:
            extra["cluster_kwargs"] = json.loads(cluster_kwargs)
        except ValueError as err:
            raise ConfigError(
                f"--cluster-kwargs {cluster_kwargs!r} is not JSON — e.g. "
                '\'{"queue": "gpu", "cores": 8}\''
            ) from err
        if not isinstance(extra["cluster_kwargs"], dict):
            raise ConfigError("--cluster-kwargs must be a JSON object, e.g. '{\"cores\": 8}'")
    if adapt is not None:
        low, sep, high = adapt.partition(":")
        if not sep or not low.isdigit() or not high.isdigit():
            raise ConfigError(f"--adapt {adapt!r}: give MIN:MAX worker counts, e.g. 0:8")
        extra["adapt"] = {"minimum": int(low), "maximum": int(high)}
    if cluster is None and not extra:
        return None
    raw = configured.model_dump(exclude_defaults=True)
    if cluster is not None:
        for key in ("address", "scheduler_file", "cluster_class", "cluster_kwargs", "adapt"):
            raw.pop(key, None)
        way = parse_cluster(cluster)
        raw.update(way)
        if way.get("address") not in ("local", "local-cuda"):  # sized by whoever starts it
            for key in ("workers", "threads_per_worker", "memory_limit"):
                raw.pop(key, None)
        if way.get("address") != "local":
            raw.pop("processes", None)
    raw.update(extra)
    resolve_cluster(configured, raw)  # one clear line now, not after a server started
    return raw
