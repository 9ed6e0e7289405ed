"""Session-scoped Prefect test harness (a real temporary server, SQLite in a temp dir)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    """One real Prefect API for every flow test; its URL is exported for worker processes."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url  # Dask worker processes spawned later inherit it
        try:
            yield url
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous
