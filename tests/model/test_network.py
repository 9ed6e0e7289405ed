"""PlumeNet and ModelConfig: output shapes, normalisation, config round trip (offline)."""

from __future__ import annotations

import json

import pytest
import torch

from plumenet.model.network import ModelConfig, PlumeNet
from plumenet.model.registry import MODEL_CONFIGS, build_model
from tests.helpers.model import tiny_model


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
