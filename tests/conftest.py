"""Shared fixtures: a seeded ``rng``, stores under ``tmp_path``, and one moto S3 server.

The S3 server is a real HTTP server (moto's ``ThreadedMotoServer``) on 127.0.0.1 with a
free port, started once per test session on first use. Tests get a fresh bucket from
``s3_bucket`` (or make their own with ``make_bucket``) and pass ``s3_storage_options`` to
anything that takes fsspec ``storage_options``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.flows import free_port


def pytest_configure(config: pytest.Config) -> None:
    """Keep plumenet's cache (the temporary Prefect server's empty schema) out of the user's
    home: one folder per test session, shared by the CLI processes the tests start."""
    if "PLUMENET_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["PLUMENET_CACHE_DIR"] = tempfile.mkdtemp(prefix="plumenet-test-cache-")


#: Fake credentials for moto: tests assert they never leak into stores, logs or output.
S3_KEY = "AKIAPLUMENETTESTKEY01"
S3_SECRET = "plumenet-test-secret-do-not-leak-7f3a9c"


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so every test's random data is the same on every run."""
    return np.random.default_rng(20240607)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where a test's Zarr store lives (never in the working tree)."""
    return tmp_path / "plumenet.zarr"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1 (one per test session)."""
    from moto.server import ThreadedMotoServer

    # botocore must never find real credentials or a real endpoint from the environment.
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = S3_KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = S3_SECRET
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def s3_storage_options(moto_server: str) -> dict:
    """fsspec/s3fs ``storage_options`` for the moto server (with the fake credentials)."""
    return {
        "key": S3_KEY,
        "secret": S3_SECRET,
        "client_kwargs": {"endpoint_url": moto_server},
    }


@pytest.fixture(scope="session")
def make_bucket(s3_storage_options: dict) -> Callable[[str | None], str]:
    """Factory: ``make_bucket(name=None) -> "s3://name"``; creates a fresh, empty bucket."""
    import s3fs

    def _make(name: str | None = None) -> str:
        bucket = name or f"test-{uuid.uuid4().hex[:12]}"
        fs = s3fs.S3FileSystem(**s3_storage_options, skip_instance_cache=True)
        fs.mkdir(bucket)
        return f"s3://{bucket}"

    return _make


@pytest.fixture
def s3_bucket(make_bucket: Callable[[str | None], str]) -> str:
    """A fresh empty bucket for one test, as ``s3://name``."""
    return make_bucket(None)


# Prefect: one real temporary server per session, for the flow tests.
from tests.helpers.prefect import prefect_harness  # noqa: E402, F401
