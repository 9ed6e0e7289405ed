"""Backbone: patch-token grids, intermediate layers, freezing (offline, random weights)."""

from __future__ import annotations

import pytest
import torch

from plumenet.model.backbone import resolve_layer
from plumenet.model.network import PlumeNet
from tests.helpers.model import tiny_model


@pytest.fixture(scope="module")
def model() -> PlumeNet:
    return tiny_model(seed=0)


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


def test_resolve_layer_counts_negative_indices_from_the_end():
    assert [resolve_layer(k, 4) for k in (0, 1, 4, -1, -5)] == [0, 1, 4, 4, 0]
    for bad in (5, -6):
        with pytest.raises(ValueError, match="out of range"):
            resolve_layer(bad, 4)
