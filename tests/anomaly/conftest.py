"""The ``tiny`` fixture of the anomaly tests: a tiny random backbone at 112 px input."""

from __future__ import annotations

import pytest

from plumenet.model.network import PlumeNet
from tests.helpers.model import tiny_model_at


@pytest.fixture(scope="module")
def tiny() -> PlumeNet:
    """A tiny random backbone (2 layers, 32 wide) at a small input size."""
    return tiny_model_at(112)
