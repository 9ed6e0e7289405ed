"""Fixtures shared by the flow tests."""

from __future__ import annotations

import pytest

from plumenet.model.registry import build_model
from plumenet.model.weights import save_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny PlumeNet saved as a model directory (fast to load in every Dask worker)."""
    out = tmp_path_factory.mktemp("model") / "tiny"
    save_model(build_model("tiny", seed=0), out, model_id="tiny-flow-test")
    return str(out)
