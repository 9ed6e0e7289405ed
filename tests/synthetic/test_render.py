"""Synthetic scene rendering: determinism, sizes, exact labels that agree with the colours."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from plumenet.classes import LABEL_CLASSES, MODEL_CLASSES
from plumenet.synthetic.canvas import GAS_THRESHOLD
from plumenet.synthetic.render import make_dataset, render_random, render_scene
from plumenet.synthetic.spec import SceneSpec, random_scene_spec, vent_position

L = {name: i for i, name in enumerate(LABEL_CLASSES)}


def _spec(seed: int, activity: tuple[str, ...], **kw) -> SceneSpec:
    kw.setdefault("night", False)
    kw.setdefault("cloud_cover", 0.0)
    spec = random_scene_spec(
        np.random.default_rng(seed), size=(320, 240), view_seed=1, activity=activity, **kw
    )
    return replace(spec, summit_cloud=False)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_same_seed_same_arrays_different_seed_different():
    a_rgb, a_lab = render_random(11, size=(200, 150))
    b_rgb, b_lab = render_random(11, size=(200, 150))
    c_rgb, _ = render_random(12, size=(200, 150))
    np.testing.assert_array_equal(a_rgb, b_rgb)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_rgb, c_rgb)


@pytest.mark.parametrize("size", [(320, 240), (640, 360), (256, 256), (240, 320), (97, 61)])
def test_shapes_dtypes_and_label_range(size):
    rgb, label = render_random(3, size=size)
    width, height = size
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    assert label.shape == (height, width) and label.dtype == np.uint8
    assert int(label.max()) < len(LABEL_CLASSES)
    assert {L["background"], L["land"]} <= set(np.unique(label).tolist())


def test_quiet_volcano_has_only_background_and_land():
    _, label = render_scene(_spec(5, ()))
    assert set(np.unique(label).tolist()) == {L["background"], L["land"]}


def test_column_is_darker_than_sky_and_rises_above_the_vent():
    spec = _spec(6, ("eruption_column",))
    rgb, label = render_scene(spec)
    col = label == L["eruption_column"]
    sky = label == L["background"]
    assert col.sum() > 500
    assert _luma(rgb[col]).mean() < _luma(rgb[sky]).mean() - 40
    _, vy = vent_position(spec)
    rows = np.nonzero(col)[0]
    assert rows.max() <= vy + 1
    # convective texture: strong local contrast inside the column
    assert _luma(rgb[col]).std() > 15


def test_lava_pixels_are_saturated_orange_day_and_night():
    for night in (False, True):
        spec = _spec(7, ("lava_flow",), night=night)
        rgb, label = render_scene(spec)
        lava = label == L["lava"]
        assert lava.sum() > 20
        r, g, b = (rgb[lava].astype(float).mean(axis=0)).tolist()
        assert r > 180 and r > g + 40 and g > b
    land = label == L["land"]
    assert _luma(rgb[land]).mean() < 60  # the night around the glowing lava is dark


def test_ash_cloud_is_brownish_and_gas_is_white():
    rgb, label = render_scene(_spec(8, ("eruption_cloud", "low_temperature_gas")))
    ash = label == L["eruption_cloud"]
    gas = label == L["low_temperature_gas"]
    assert ash.sum() > 200 and gas.sum() > 50
    r, g, b = rgb[ash].astype(float).mean(axis=0).tolist()
    assert r > g > b and r - b > 15
    assert _luma(rgb[gas]).mean() > _luma(rgb[ash]).mean() + 40


def test_fog_hides_everything_as_background():
    spec = replace(_spec(10, ("eruption_column", "lava_flow")), fog=0.95)
    _, label = render_scene(spec)
    assert np.all(label == L["background"])


def test_summit_cloud_hides_the_summit_land():
    spec = _spec(12, (), cloud_cover=0.9)
    clear_spec = replace(spec, summit_cloud=False)
    cloudy_spec = replace(spec, summit_cloud=True)
    _, clear = render_scene(clear_spec)
    _, cloudy = render_scene(cloudy_spec)
    _, vy = vent_position(spec)
    band = slice(int(vy), int(vy) + 5)
    assert (cloudy[band] == L["land"]).sum() < (clear[band] == L["land"]).sum()


def test_gas_label_follows_the_translucency_threshold():
    # a faint plume (peak opacity below the threshold) leaves the sky labelled background
    spec = _spec(13, ("low_temperature_gas",))
    assert spec.gas is not None
    faint = replace(spec, gas=replace(spec.gas, opacity=GAS_THRESHOLD * 0.25))
    _, label = render_scene(faint)
    assert not np.any(label == L["low_temperature_gas"])
    _, label = render_scene(spec)
    assert np.any(label == L["low_temperature_gas"])


def test_night_frames_are_dark():
    day_rgb, _ = render_scene(_spec(14, ()))
    night_rgb, _ = render_scene(_spec(14, (), night=True))
    assert _luma(night_rgb).mean() < 0.5 * _luma(day_rgb).mean()


def test_make_dataset_model_classes_and_seed_independence():
    imgs, labs = make_dataset(3, seed=1, size=64)
    again, _ = make_dataset(3, seed=1, size=64)
    other, _ = make_dataset(3, seed=2, size=64)
    assert imgs.shape == (3, 64, 64, 3) and labs.shape == (3, 64, 64)
    assert imgs.dtype == np.uint8 and labs.dtype == np.uint8
    assert int(labs.max()) < len(MODEL_CLASSES)
    np.testing.assert_array_equal(imgs, again)
    assert all(not np.array_equal(imgs[i], other[j]) for i in range(3) for j in range(3))
