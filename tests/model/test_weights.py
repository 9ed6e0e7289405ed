"""Weights: directory save/load round trips, digests, source dispatch, the errors users see."""

from __future__ import annotations

import json

import pytest
import torch

import plumenet.model.weights as weights_mod
from plumenet.errors import WeightsError
from plumenet.model.loaded import LoadedModel, weights_digest
from plumenet.model.weights import load_model, save_model
from tests.helpers.model import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=3)


@pytest.fixture(scope="module")
def batch():
    return torch.randn(2, 3, 518, 518, generator=torch.Generator().manual_seed(0))


def test_save_load_round_trip_identical_outputs_and_digest(tmp_path, model, batch):
    out = save_model(model, tmp_path / "m", model_id="tiny-v1", metadata={"epochs": 3})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    doc = json.loads((out / "config.json").read_text())
    assert doc["format"] == "plumenet" and doc["model_id"] == "tiny-v1"
    assert doc["config"]["name"] == "tiny" and doc["metadata"] == {"epochs": 3}
    loaded = load_model(str(out), device="cpu")
    assert isinstance(loaded, LoadedModel)
    assert loaded.model_id == "tiny-v1"
    assert loaded.digest == weights_digest(model.state_dict()) == doc["digest"]
    assert len(loaded.digest) == 64
    assert loaded.backbone == "tiny" and not loaded.is_demo
    assert loaded.metadata == {"epochs": 3}
    with torch.no_grad():
        assert torch.equal(model(batch), loaded.model(batch))
    assert not loaded.model.training


def test_digest_changes_with_weights_and_ignores_device_layout(model):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    d0 = weights_digest(state)
    assert (
        weights_digest({k: v.t().contiguous().t() if v.dim() == 2 else v for k, v in state.items()})
        == d0
    )
    key = "head.conv2.bias"
    state[key] = state[key] + 1e-6
    assert weights_digest(state) != d0
    assert weights_digest(tiny_model(seed=4).state_dict()) != d0


def test_digest_mismatch_is_reported(tmp_path, model):
    out = save_model(model, tmp_path / "m", model_id="x")
    doc = json.loads((out / "config.json").read_text())
    doc["digest"] = "0" * 64
    (out / "config.json").write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="do not match the digest"):
        load_model(str(out))


def test_demo_flag_from_metadata(tmp_path, model):
    out = save_model(model, tmp_path / "d", model_id="demo-x", metadata={"demo": True})
    assert load_model(str(out)).is_demo


def test_hf_snapshot_in_our_layout_is_loaded(tmp_path, monkeypatch, model):
    snap = save_model(model, tmp_path / "snapshots" / "abc123", model_id="model")
    monkeypatch.setattr(weights_mod, "hf_snapshot", lambda repo, rev, spec: snap)
    loaded = load_model("hf:owner/repo@main")
    assert loaded.model_id == "owner/repo"
    assert loaded.metadata["hf_commit"] == "abc123"
    assert loaded.digest == weights_digest(model.state_dict())


def test_missing_path_and_unknown_sources(tmp_path):
    with pytest.raises(WeightsError, match="not found") as info:
        load_model(str(tmp_path / "nope"))
    assert "hf:OWNER/REPO" in str(info.value) and "directory" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match=r"config\.json"):
        load_model(str(tmp_path / "empty"))
    bad = tmp_path / "weights.xyz"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a model directory"):
        load_model(str(bad))
    garbage_checkpoint = tmp_path / "weights.bin"
    garbage_checkpoint.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="PyTorch state dict from"):
        load_model(str(garbage_checkpoint))
    ts = tmp_path / "broken.pt"
    ts.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot load TorchScript"):
        load_model(str(ts))


def test_missing_demo_model_says_how_to_create_it(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_mod, "DEMO_MODEL_DIR", tmp_path / "demo-model")
    with pytest.raises(WeightsError, match=r"python -m plumenet\.training\.demo_model"):
        load_model("demo")


def test_demo_spec_loads_bundled_dir(tmp_path, monkeypatch, model):
    demo_dir = save_model(model, tmp_path / "demo-model", model_id="plumenet-demo")
    monkeypatch.setattr(weights_mod, "DEMO_MODEL_DIR", demo_dir)
    loaded = load_model("demo")
    assert loaded.is_demo and loaded.source == "demo" and loaded.model_id == "plumenet-demo"


def test_wrong_shapes_are_a_weights_error(tmp_path, model):
    out = save_model(model, tmp_path / "m", model_id="x")
    doc = json.loads((out / "config.json").read_text())
    doc["config"]["head_hidden"] = 8
    doc.pop("digest")
    (out / "config.json").write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="do not fit"):
        load_model(str(out))


def test_head_only_needs_hf_backbone(tmp_path, model):
    with pytest.raises(ValueError, match="hf_backbone"):
        save_model(model, tmp_path / "h", model_id="x", include_backbone=False)


def test_hub_snapshot_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "README.json").write_text("{}")
    monkeypatch.setattr(weights_mod, "hf_snapshot", lambda repo, rev, spec: snap)
    with pytest.raises(WeightsError, match="holds no weights plumenet can read"):
        load_model("hf:owner/empty")
