"""A Dask worker preload that imports the model stack while the worker starts.

A fresh worker spends ~3 s (2-core CPU, measured) importing torch and ``transformers``
before its first unit can load the model. Started in a thread as the worker process comes
up, that import runs while the worker registers, the driver identifies the model and plans
its first window, and the first task travels; the first unit then finds the modules loaded,
or waits for the half-done import (Python's import lock) rather than redoing it.

The worker processes plumenet starts (``local`` with worker processes, ``local-cuda``) get
it through ``cluster.worker_config()`` / ``gpu_cluster.local_cuda_kwargs``; an in-process
worker needs none (the driver has imported the stack to identify the model). For your own
workers, ``dask worker --preload plumenet.jobs.warmup``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

#: The name of the import thread (tests look for it).
THREAD_NAME = "plumenet-warmup"


def import_model_stack() -> float:
    """Import what ``workunit.get_predictor`` needs, and start CUDA where there is one;
    returns the seconds it took. Never raises: a failure here shows up again, with its
    real error, when the first unit loads the model."""
    started = time.perf_counter()
    try:
        import torch  # noqa: PLC0415

        import plumenet.inference.predictor  # noqa: PLC0415
        import plumenet.model.weights  # noqa: F401, PLC0415

        if torch.cuda.is_available():
            torch.cuda.init()
    except Exception as err:  # noqa: BLE001 - the first unit reports it properly
        logger.warning("worker warm-up: importing the model stack failed: %s", err)
    seconds = time.perf_counter() - started
    logger.debug("worker warm-up: model stack imported in %.1f s", seconds)
    return seconds


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: start the import in a daemon thread and return at once, so the
    worker registers with the scheduler without waiting for it."""
    threading.Thread(target=import_model_stack, name=THREAD_NAME, daemon=True).start()
