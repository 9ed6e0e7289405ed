"""Files we write are readable by the group and others (0644 / 0755 under umask 022)."""

from __future__ import annotations

import os
import stat

import pytest

from plumenet.model.files import write_atomically
from plumenet.model.weights import save_model
from tests.helpers.model import tiny_model


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_saved_models_are_world_readable(tmp_path, umask_022):
    out = save_model(tiny_model(), tmp_path / "model", model_id="tiny")
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["config.json", "model.safetensors"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_atomic_writes_leave_no_private_modes(tmp_path, umask_022):
    out = write_atomically(tmp_path / "a", {"x.txt": lambda p: p.write_text("x")})
    assert stat.S_IMODE((out / "x.txt").stat().st_mode) == 0o644
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
