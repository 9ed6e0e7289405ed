"""Run in Dask worker processes (``client.run``): what the warm-up preload did there."""

from __future__ import annotations


def warm_up_finished(timeout: float = 120.0) -> bool:
    """Wait for this worker's warm-up thread (``plumenet.jobs.warmup``) to end; True when the
    model stack is then imported (nothing else in a worker that ran no task imports it).
    Without the preload there is no thread to wait for, and the answer is False."""
    import sys
    import threading

    from plumenet.jobs.warmup import THREAD_NAME

    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join(timeout)
    return "plumenet.model.weights" in sys.modules
