"""Scene specs: random sizes and aspects, fixed views, activity names, argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from plumenet.synthetic.spec import random_scene_spec


def test_random_sizes_cover_aspects_and_widths():
    sizes = [random_scene_spec(np.random.default_rng(s)) for s in range(200)]
    widths = [s.width for s in sizes]
    ratios = {round(s.width / s.height, 2) for s in sizes}
    assert min(widths) >= 320 and max(widths) <= 1920
    assert max(widths) > 1200
    assert {1.33, 1.78, 1.0, 0.75} <= ratios


def test_view_seed_fixes_the_mountain():
    a = random_scene_spec(np.random.default_rng(1), size=(320, 240), view_seed=42)
    b = random_scene_spec(np.random.default_rng(2), size=(320, 240), view_seed=42)
    c = random_scene_spec(np.random.default_rng(1), size=(320, 240), view_seed=43)
    assert a.mountain == b.mountain
    assert a.mountain != c.mountain


def test_model_class_names_pick_label_classes():
    spec = random_scene_spec(
        np.random.default_rng(9),
        size=(320, 240),
        view_seed=1,
        activity=("ash_emissions", "non_ash_emissions", "lava", "eruption_column"),
        night=False,
        cloud_cover=0.0,
    )
    assert spec.ash_cloud is not None and spec.gas is not None
    assert spec.lava is not None and spec.column is not None
    assert spec.gas.temperature in {"low", "high"}


def test_unknown_activity_is_rejected():
    with pytest.raises(ValueError, match="unknown activity"):
        random_scene_spec(np.random.default_rng(0), size=(64, 64), activity=["steam"])


def test_too_small_size_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        random_scene_spec(np.random.default_rng(0), size=(8, 8))
