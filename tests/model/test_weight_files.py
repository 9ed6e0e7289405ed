"""Plain weight files: head-only or whole-model safetensors and PyTorch checkpoints."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import plumenet.model.weight_files as weight_files_mod
import plumenet.model.weights as weights_mod
from plumenet.errors import WeightsError
from plumenet.model.loaded import weights_digest
from plumenet.model.network import SegmentationHead
from plumenet.model.registry import MODEL_CONFIGS, build_model
from plumenet.model.torchscript import export_torchscript
from plumenet.model.weights import load_model
from tests.helpers.model import tiny_model


def test_head_weights_file_goes_on_the_vits14_backbone(tmp_path, monkeypatch):
    """A hub snapshot with only head weights (common names) loads onto ViT-S/14."""
    head = SegmentationHead(384, 32, 6)
    torch.nn.init.normal_(head.conv1.weight)
    state = {f"segmentation_head.{k}": v.contiguous() for k, v in head.state_dict().items()}
    snap = tmp_path / "snap"
    snap.mkdir()
    save_file(state, str(snap / "head.safetensors"))
    # offline: a random-weight backbone stands in for facebook/dinov2-with-registers-small
    calls = []

    def fake_build(cfg, **kwargs):
        calls.append(kwargs)
        return build_model(cfg, seed=0)

    monkeypatch.setattr(weight_files_mod, "build_model", fake_build)
    monkeypatch.setattr(weights_mod, "hf_snapshot", lambda repo, rev, spec: snap)
    loaded = load_model("hf:owner/plume-head")
    assert calls == [{"pretrained": True}]
    assert loaded.model.config.head_hidden == 32
    assert torch.equal(loaded.model.head.conv1.weight, head.conv1.weight)
    assert loaded.backbone == "facebook/dinov2-with-registers-small"
    assert loaded.model_id == "owner/plume-head"


def _fake_pretrained(monkeypatch):
    """Offline: a random-weight backbone stands in for the hub's ViT-S/14 registers."""
    calls = []

    def fake_build(cfg, **kwargs):
        calls.append(kwargs)
        return build_model(cfg, seed=0)

    monkeypatch.setattr(weight_files_mod, "build_model", fake_build)
    return calls


def _head(hidden: int = 24) -> SegmentationHead:
    head = SegmentationHead(384, hidden, 6)
    torch.nn.init.normal_(head.conv1.weight)
    torch.nn.init.normal_(head.conv2.weight)
    return head


@pytest.mark.parametrize(
    ("wrap", "suffix"),
    [
        (lambda sd: {"state_dict": {f"decoder.{k}": v for k, v in sd.items()}}, ".pth"),
        (lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}}, ".pt"),
        (lambda sd: {f"classifier.{k}": v for k, v in sd.items()}, ".bin"),
        (lambda sd: {f"head.{k}": v for k, v in sd.items()}, ".pth"),
    ],
)
def test_pytorch_head_checkpoints_in_the_usual_layouts(tmp_path, monkeypatch, wrap, suffix):
    calls = _fake_pretrained(monkeypatch)
    head = _head()
    path = tmp_path / f"plume_head{suffix}"
    torch.save(wrap(head.state_dict()), path)
    loaded = load_model(str(path))
    assert calls == [{"pretrained": True}]
    assert loaded.model.config.head_hidden == 24
    assert torch.equal(loaded.model.head.conv1.weight, head.conv1.weight)
    assert torch.equal(loaded.model.head.conv2.bias, head.conv2.bias)
    assert loaded.metadata["format"] == "head-pth"


def test_whole_model_checkpoint_in_hugging_face_layout_needs_no_download(tmp_path, monkeypatch):
    calls = _fake_pretrained(monkeypatch)
    model = build_model(MODEL_CONFIGS["vits14-reg"], seed=3)
    state = {k.replace("backbone.model.", "backbone.", 1): v for k, v in model.state_dict().items()}
    path = tmp_path / "plumenet_full.pth"
    torch.save({"model_state_dict": state, "epoch": 7}, path)
    loaded = load_model(str(path))
    assert calls == [{"pretrained": False}]
    assert loaded.digest == weights_digest(model.state_dict())
    assert loaded.metadata["format"] == "whole-pth"


def test_a_pth_that_is_torchscript_loads_as_torchscript(tmp_path):
    path = export_torchscript(tiny_model(), tmp_path / "traced.pth", model_id="traced-tiny")
    loaded = load_model(str(path))
    assert loaded.model_id == "traced-tiny"
    assert loaded.metadata.get("format") != "head-pth"


def test_no_known_layout_lists_keys_found_and_shapes_expected(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.layer.weight": torch.zeros(3, 5), "fc.bias": torch.zeros(2)}, path)
    with pytest.raises(WeightsError, match=r"no layout plumenet knows") as info:
        load_model(str(path))
    message = str(info.value)
    assert "encoder.layer.weight (3, 5)" in message and "fc.bias (2,)" in message
    assert "head.conv1.weight (64, 384, 3, 3)" in message


class _Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _Payload()}, path)
    with pytest.raises(WeightsError, match="PyTorch state dict from"):
        load_model(str(path))


def test_hub_snapshot_with_a_pth_head(tmp_path, monkeypatch):
    calls = _fake_pretrained(monkeypatch)
    head = _head(16)
    snap = tmp_path / "snap"
    snap.mkdir()
    torch.save({f"segmentation_head.{k}": v for k, v in head.state_dict().items()},
               snap / "vigia_head.pth")
    monkeypatch.setattr(weights_mod, "hf_snapshot", lambda repo, rev, spec: snap)
    loaded = load_model("hf:owner/plume-pth")
    assert calls == [{"pretrained": True}]
    assert loaded.model_id == "owner/plume-pth"
    assert torch.equal(loaded.model.head.conv1.weight, head.conv1.weight)
