"""Per-slot scenes of a synthetic archive and the true model-class fractions of a label."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plumenet.classes import LABEL_CLASSES, MODEL_CLASSES
from plumenet.synthetic.frames import episode_variants, frame_spec, label_fractions

L = {name: i for i, name in enumerate(LABEL_CLASSES)}
M = {name: i for i, name in enumerate(MODEL_CLASSES)}


def test_label_fractions_merge_label_classes_into_model_classes():
    label = np.full((40, 60), L["background"], dtype=np.uint8)
    label[20:] = L["land"]
    label[:10, :30] = L["eruption_cloud"]
    label[:10, 30:] = L["pyroclastic_flow"]
    frac = label_fractions(label)
    assert frac.shape == (len(MODEL_CLASSES),)
    np.testing.assert_allclose(frac.sum(), 1.0)
    np.testing.assert_allclose(frac[M["land"]], 0.5, atol=0.01)
    np.testing.assert_allclose(frac[M["ash_emissions"]], 0.25, atol=0.01)
    assert frac[M["eruption_column"]] == 0.0


def _slot(active: str, *, obstructed: bool = False, wind: int = -1) -> pd.Series:
    return pd.Series(
        {
            "time": pd.Timestamp("2024-03-01T12:00"),
            "night": False,
            "cloud_cover": 0.2,
            "obstructed": obstructed,
            "wind": wind,
            "eruption_column": 1.0 if active else 0.0,
            "ash_emissions": 0.0,
            "non_ash_emissions": 0.0,
            "lava": 0.0,
            "active": active,
        }
    )


def test_frame_spec_shows_the_active_episodes_in_the_fixed_view():
    episodes = pd.DataFrame(
        {
            "episode": [0],
            "class": ["eruption_column"],
            "onset": [pd.Timestamp("2024-03-01T10:00")],
            "end": [pd.Timestamp("2024-03-01T14:00")],
        }
    )
    variants = episode_variants(episodes, seed=1)
    assert variants == {0: {"eruption_column"}}
    active = frame_spec(_slot("0"), 0, 1, 42, (96, 72), variants)
    quiet = frame_spec(_slot(""), 1, 1, 42, (96, 72), variants)
    hidden = frame_spec(_slot("", obstructed=True), 2, 1, 42, (96, 72), variants)
    assert active.column is not None and active.column.lean <= 0 and active.wind == -1
    assert quiet.column is None and quiet.fog == 0.0
    assert (active.width, active.height) == (96, 72)
    assert active.mountain == quiet.mountain == hidden.mountain
    assert hidden.fog >= 0.92
