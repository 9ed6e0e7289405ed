"""Fixtures of the store tests: the camera of :func:`tests.helpers.store.make_camera` and a
store URL in the test's temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from plumenet.config import CameraConfig
from tests.helpers.store import make_camera


@pytest.fixture
def cam() -> CameraConfig:
    return make_camera()


@pytest.fixture
def url(store_path: Path) -> str:
    return str(store_path)
