"""Choosing backbone layers for anomaly features."""

from __future__ import annotations

from plumenet.anomaly.features import default_layers


def test_default_layers():
    assert default_layers(12) == (4, 8, 12)
    assert default_layers(4) == (1, 3, 4)
    assert default_layers(2) == (1, 2)
