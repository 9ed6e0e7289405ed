"""What each frame slot of a synthetic archive shows, and its true class fractions.

:func:`episode_variants` fixes the label-level look of each episode for its whole duration
(gas temperature, lava flow or fountain, pyroclastic flow or not); :func:`frame_spec` builds
the :class:`SceneSpec` of one timeline slot: the camera's fixed view, the slot's weather and
the scaled activity of its episodes. :func:`label_fractions` measures the model-class fractions
of a true label mask at the model input size (:data:`FRACTION_SIZE`), as the ground truth.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from plumenet.classes import LABEL_CLASSES, LABEL_TO_MODEL_INDEX, MODEL_CLASSES
from plumenet.synthetic.spec import SceneSpec, random_scene_spec
from plumenet.synthetic.timeline import episode_rows

#: Side of the square the ground-truth fractions are measured at (the model input).
FRACTION_SIZE = 518


def episode_variants(episodes: pd.DataFrame, seed: int) -> dict[int, set[str]]:
    """Label-level look of each episode, fixed for its duration (gas type, lava kind...)."""
    out: dict[int, set[str]] = {}
    for ep, cls, _onset, _end in episode_rows(episodes):
        rng = np.random.default_rng([seed, 3, ep])
        if cls == "eruption_column":
            names = {"eruption_column"}
        elif cls == "ash_emissions":
            names = {"eruption_cloud"} | ({"pyroclastic_flow"} if rng.random() < 0.25 else set())
        elif cls == "non_ash_emissions":
            names = {"low_temperature_gas" if rng.random() < 0.6 else "high_temperature_gas"}
        else:
            names = {"lava_flow" if rng.random() < 0.6 else "lava_fountain"}
        out[ep] = names
    return out


def frame_spec(
    slot: pd.Series,
    index: int,
    seed: int,
    view_seed: int,
    size: tuple[int, int],
    variants: dict[int, set[str]],
) -> SceneSpec:
    """The scene of one slot: the camera's fixed view, the slot's weather and activity."""
    names: set[str] = set()
    for ep in filter(None, str(slot["active"]).split(",")):
        names |= variants[int(ep)]
    if "low_temperature_gas" in names and "high_temperature_gas" in names:
        names.discard("high_temperature_gas")
    if "lava_flow" in names and "lava_fountain" in names:
        names.discard("lava_fountain")
    rng = np.random.default_rng([seed, 1, index])
    spec = random_scene_spec(
        rng,
        size=size,
        view_seed=view_seed,
        activity=names,
        night=bool(slot["night"]),
        cloud_cover=float(slot["cloud_cover"]),
    )
    wind = int(slot["wind"])
    changes: dict[str, Any] = {"wind": wind}
    if spec.column is not None:
        k = 0.35 + 0.65 * float(slot["eruption_column"])
        changes["column"] = replace(
            spec.column, height=spec.column.height * k, lean=abs(spec.column.lean) * wind
        )
    if spec.ash_cloud is not None:
        k = 0.4 + 0.6 * float(slot["ash_emissions"])
        changes["ash_cloud"] = replace(spec.ash_cloud, length=spec.ash_cloud.length * k)
    if spec.lava is not None:
        k = 0.5 + 0.5 * float(slot["lava"])
        changes["lava"] = replace(spec.lava, length=spec.lava.length * k)
    if bool(slot["obstructed"]):
        changes["fog"] = float(rng.uniform(0.92, 1.0))
    return replace(spec, **changes)


def label_fractions(label8: np.ndarray) -> np.ndarray:
    """Model-class fractions of a label mask after nearest resize to 518 x 518."""
    h, w = label8.shape
    rows = ((np.arange(FRACTION_SIZE) + 0.5) * h / FRACTION_SIZE).astype(np.int64)
    cols = ((np.arange(FRACTION_SIZE) + 0.5) * w / FRACTION_SIZE).astype(np.int64)
    counts8 = np.bincount(label8[rows][:, cols].ravel(), minlength=len(LABEL_CLASSES))
    counts = np.zeros(len(MODEL_CLASSES), dtype=np.int64)
    np.add.at(counts, LABEL_TO_MODEL_INDEX, counts8)
    return counts / (FRACTION_SIZE * FRACTION_SIZE)
