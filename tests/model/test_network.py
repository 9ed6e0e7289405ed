"""Model architecture: shapes, freezing, configs, head size (all offline, random weights)."""

from __future__ import annotations

import json

import pytest
import torch

from plumenet.model.network import (
    MODEL_CONFIGS,
    Backbone,
    ModelConfig,
    PlumeNet,
    SegmentationHead,
    build_model,
    count_parameters,
)
from tests.helpers.model import PatchMeanBackbone, tiny_model


@pytest.fixture(scope="module")
def model() -> PlumeNet:
    return tiny_model(seed=0)


@pytest.mark.parametrize(("h", "w"), [(518, 518), (70, 112), (112, 70), (14, 14)])
def test_shapes_square_and_non_square(model, h, w):
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        logits = model(x)
        grid = model.forward_grid(x)
        feats = model.backbone(x)
    assert logits.shape == (2, 6, h, w)
    assert grid.shape == (2, 6, h // 14, w // 14)
    assert feats.shape == (2, model.backbone.embed_dim, h // 14, w // 14)


def test_grid_is_37_at_518(model):
    assert model.config.grid_size == 37
    with torch.no_grad():
        assert model.forward_grid(torch.zeros(1, 3, 518, 518)).shape[-2:] == (37, 37)


@pytest.mark.parametrize(("h", "w"), [(71, 70), (70, 100), (0, 14)])
def test_sizes_not_multiple_of_patch_rejected(model, h, w):
    with pytest.raises(ValueError, match="multiples of the patch size 14"):
        model.backbone(torch.zeros(1, 3, h, w))


def test_forward_drops_cls_and_register_tokens(model):
    x = torch.randn(1, 3, 42, 56)
    bb = model.backbone
    with torch.no_grad():
        tokens = bb.model(pixel_values=x).last_hidden_state
        grid = bb(x)
    assert tokens.shape[1] == 1 + 4 + 3 * 4
    # patch (row 1, col 2) is token 5 + 1 * 4 + 2
    assert torch.equal(grid[0, :, 1, 2], tokens[0, 5 + 4 + 2])


def test_forward_layers(model):
    x = torch.randn(1, 3, 70, 112)
    bb = model.backbone
    with torch.no_grad():
        layers = bb.forward_layers(x, [0, 1, -1])
        last = bb(x)
    assert [t.shape for t in layers] == [(1, 32, 5, 8)] * 3
    torch.testing.assert_close(layers[-1], last)
    assert not torch.allclose(layers[1], layers[2])
    with pytest.raises(ValueError, match="out of range"):
        bb.forward_layers(x, [3])


def test_frozen_backbone_stays_eval_and_has_no_grad():
    m = tiny_model(seed=0)
    assert all(not p.requires_grad for p in m.backbone.parameters())
    assert all(p.requires_grad for p in m.head.parameters())
    m.train()
    assert m.head.training
    assert not m.backbone.model.training
    m.backbone.trainable = True
    assert all(p.requires_grad for p in m.backbone.parameters())
    m.train()
    assert m.backbone.model.training


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


def test_config_round_trip_and_validation():
    for cfg in MODEL_CONFIGS.values():
        data = json.loads(json.dumps(cfg.to_dict()))
        assert ModelConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**MODEL_CONFIGS["tiny"].to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="multiple of the patch size"):
        ModelConfig(name="x", backbone={"patch_size": 14}, input_size=500)
    with pytest.raises(ValueError, match="unknown model config"):
        build_model("no-such-model")


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


def test_normalize_uint8_and_float_agree(model):
    x8 = torch.randint(0, 256, (2, 3, 14, 28), dtype=torch.uint8)
    xf = x8.float() / 255
    a = model.normalize(x8)
    b = model.normalize(xf)
    torch.testing.assert_close(a, b)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(a, (xf - mean) / std)
    assert torch.equal(xf, x8.float() / 255)  # input untouched
    # mean/std are not part of the weights
    assert "mean" not in model.state_dict() and "std" not in model.state_dict()


def test_injected_backbone_and_device(model):
    m = build_model("tiny", backbone=PatchMeanBackbone(), seed=0)
    assert m.head.conv1.in_channels == 3
    assert m(torch.zeros(1, 3, 28, 42)).shape == (1, 6, 28, 42)
    assert model.device == torch.device("cpu")
    assert isinstance(model.backbone, Backbone)
