"""Where flows report to: a configured Prefect API, or one local server shared by all processes.

Prefect's ephemeral mode starts a private server inside each process that runs a flow or a
task. Dask worker processes would each start their own, so the CLI starts one temporary
server and exports its URL before the cluster's worker processes are spawned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

#: Seconds to wait for the temporary server; a loaded 2-core machine needs more than the default.
STARTUP_TIMEOUT_S = 120


def _configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    return os.environ.get("PREFECT_API_URL") or get_current_settings().api.url


@contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the Prefect API URL, starting a temporary local server when none is configured."""
    url = _configured_api_url()
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server = SubprocessASGIServer()
    server.start(timeout=STARTUP_TIMEOUT_S)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = server.api_url
    logger.info("started a temporary Prefect server at %s", server.api_url)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        _flush_api_logs()
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _flush_api_logs() -> None:
    """Send buffered run logs before the temporary server goes away."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
