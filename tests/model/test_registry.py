"""Registered architectures and build_model: configs, head size, seeding, injection."""

from __future__ import annotations

import pytest
import torch

from plumenet.model.backbone import Backbone
from plumenet.model.network import PlumeNet, SegmentationHead, count_parameters
from plumenet.model.registry import MODEL_CONFIGS, build_model
from tests.helpers.model import PatchMeanBackbone, tiny_model


@pytest.fixture(scope="module")
def model() -> PlumeNet:
    return tiny_model(seed=0)


def test_demo_config_trains_backbone():
    m = build_model("demo", seed=0)
    assert MODEL_CONFIGS["demo"].frozen_backbone is False
    assert m.backbone.trainable
    assert m.config.input_size % 14 == 0
    # the demo weights file must stay <= 5 MB (float32)
    assert count_parameters(m) * 4 < 5_000_000


def test_vits14_reg_matches_dinov2_with_registers_small_and_head_is_small():
    cfg = MODEL_CONFIGS["vits14-reg"]
    hf = cfg.hf_config()
    assert (hf.hidden_size, hf.num_hidden_layers, hf.num_attention_heads) == (384, 12, 6)
    assert (hf.mlp_ratio, hf.patch_size, hf.image_size, hf.num_register_tokens) == (
        4,
        14,
        518,
        4,
    )
    assert cfg.hf_backbone == "facebook/dinov2-with-registers-small"
    assert cfg.input_size == 518 and cfg.grid_size == 37
    model = build_model(cfg, seed=0)
    head_params = count_parameters(model.head)
    assert head_params < 250_000
    assert head_params == count_parameters(SegmentationHead(384, cfg.head_hidden, 6))
    # ViT-S/14 with registers: about 22 M backbone parameters
    assert 21_500_000 < count_parameters(model.backbone) < 22_500_000
    assert count_parameters(model, trainable_only=True) == head_params


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("tiny", seed=7).state_dict()
    after = torch.rand(1)
    b = build_model("tiny", seed=7).state_dict()
    c = build_model("tiny", seed=8).state_dict()
    assert torch.equal(before, after)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_injected_backbone_and_device(model):
    m = build_model("tiny", backbone=PatchMeanBackbone(), seed=0)
    assert m.head.conv1.in_channels == 3
    assert m(torch.zeros(1, 3, 28, 42)).shape == (1, 6, 28, 42)
    assert model.device == torch.device("cpu")
    assert isinstance(model.backbone, Backbone)
