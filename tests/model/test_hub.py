"""Hub specs and snapshots: spec validation and the one error an offline empty cache gives."""

from __future__ import annotations

import pytest

from plumenet.errors import WeightsError
from plumenet.model.hub import hub_cache_dir, hub_offline
from plumenet.model.weights import load_model


def test_hf_offline_with_empty_cache_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set") as info:
        load_model("hf:SophieGif/VIGIA-PlumeNet")
    msg = str(info.value)
    assert "HF_HUB_OFFLINE is set" in msg
    assert "SophieGif/VIGIA-PlumeNet" in msg
    assert "pass that directory" in msg and "HF_HOME / HF_HUB_CACHE" in msg
    assert str(tmp_path / "hf") in msg


def test_hf_spec_validation():
    with pytest.raises(WeightsError, match="hf:OWNER/REPO"):
        load_model("hf:not-a-repo")


def test_cache_settings_are_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert hub_cache_dir() is None and not hub_offline()
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "yes")
    assert hub_cache_dir() == str(tmp_path / "hub") and hub_offline()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == str(tmp_path / "c")
