"""A local Dask cluster whose workers are threads of the driver's process.

For one worker on a small machine (``plumenet.jobs.cluster.workers_in_process``): torch and
Pillow release the GIL, so the units need no process of their own. The workers get the
settings of the worker processes plumenet starts (``WORKER_DASK_CONFIG``: Dask's profiler
off, which would sample every thread of the driver too). A ``Worker`` reads them from the
process-wide Dask config as it starts, so they are set while the cluster starts its
workers, and only then. Its threads cannot be killed: a unit still running when it closes
stops itself before its next batch (``plumenet.jobs.workunit.worker_closing``). Named by
its import path in ``flows.runners``: this module imports ``distributed``, which the CLI
loads only when a run starts.
"""

from __future__ import annotations

from typing import Any

import dask.config
from distributed import LocalCluster

from plumenet.jobs.cluster import WORKER_DASK_CONFIG

__all__ = ["InProcessCluster"]


def _dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: ``dask.config.set`` replaces a nested dict whole."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class InProcessCluster(LocalCluster):
    """``LocalCluster(processes=False)`` with plumenet's worker settings; a fixed size
    (adaptive scaling would start later workers with Dask's own settings)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["processes"] = False
        with dask.config.set(_dotted(WORKER_DASK_CONFIG)):
            super().__init__(**kwargs)

    def adapt(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "an in-process cluster has a fixed size: adaptive scaling needs worker processes"
        )
