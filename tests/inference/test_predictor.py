"""Predictor: shapes, fractions, ROI, brightness/usability, quantization, batching."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from plumenet.classes import CLASS_COLORS, MODEL_CLASSES
from plumenet.inference.predictor import (
    FILL_VALUE,
    FramePredictions,
    Predictor,
    dequantize_probability,
    quantize_probability,
)
from tests.helpers.model import COLUMN_RGB, colour_loaded_model, tiny_loaded_model

COL = MODEL_CLASSES.index("eruption_column")
BG = MODEL_CLASSES.index("background")


@pytest.fixture(scope="module")
def tiny():
    return tiny_loaded_model(seed=0)


@pytest.fixture(scope="module")
def colour():
    return colour_loaded_model()


def _frames(n: int, seed: int = 0, size: int = 518) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _split_frame(top=COLUMN_RGB, bottom=CLASS_COLORS["background"]) -> np.ndarray:
    f = np.empty((518, 518, 3), np.uint8)
    f[:252] = top  # 252 = 18 patches: the split falls on a patch boundary
    f[252:] = bottom
    return f


def test_shapes_dtypes_and_fraction_sum(tiny):
    pred = Predictor(tiny, device="cpu").predict(_frames(3))
    assert isinstance(pred, FramePredictions) and len(pred) == 3
    assert pred.probability.shape == (3, 6, 37, 37) and pred.probability.dtype == np.uint8
    assert pred.probability.max() <= 254
    assert pred.fraction.shape == (3, 6) and pred.fraction.dtype == np.float32
    np.testing.assert_allclose(pred.fraction.sum(axis=1), 1.0, atol=1e-6)
    # probabilities of one grid cell sum to ~1 after dequantization
    p = pred.probability_float().sum(axis=1)
    assert np.abs(p - 1).max() <= 6 / 254
    assert pred.brightness.shape == (3,) and pred.usable.dtype == bool
    assert pred.classes == MODEL_CLASSES


def test_fractions_follow_the_argmax(colour):
    f = _split_frame()
    pred = Predictor(colour, device="cpu").predict(f[None], return_class_map=True)
    assert pred.class_map is not None and pred.class_map.shape == (1, 518, 518)
    # fractions are the shares of the full-resolution argmax ...
    for k in range(6):
        assert pred.fraction[0, k] == pytest.approx((pred.class_map[0] == k).mean(), abs=1e-6)
    # ... whose boundary lies within the patch rows around the colour edge (252 px)
    assert 245 / 518 <= pred.fraction[0, COL] <= 266 / 518
    assert pred.fraction[0, COL] + pred.fraction[0, BG] == pytest.approx(1.0)
    assert (pred.class_map[0, :240] == COL).all() and (pred.class_map[0, 270:] == BG).all()
    # probability grid: rows 0-17 are the column colour
    prob = pred.probability_float()[0]
    assert (prob[COL, :17] > 0.99).all() and (prob[COL, 19:] < 0.01).all()


def test_roi_mask_respected(colour):
    f = _split_frame()
    top = np.zeros((518, 518), bool)
    top[:200] = True
    pred = Predictor(colour, device="cpu", roi=top).predict(f[None])
    np.testing.assert_allclose(pred.fraction[0, COL], 1.0)
    bottom = ~top
    bottom[:300] = False
    pred = Predictor(colour, device="cpu", roi=bottom).predict(f[None])
    np.testing.assert_allclose(pred.fraction[0, BG], 1.0)
    # ROI at another resolution is resized (nearest)
    small = np.zeros((37, 37), bool)
    small[:10] = True
    pred = Predictor(colour, device="cpu", roi=small).predict(f[None])
    np.testing.assert_allclose(pred.fraction[0, COL], 1.0)
    # brightness is computed inside the ROI too
    blue = np.array(CLASS_COLORS["background"], float)
    luma = (0.299 * blue[0] + 0.587 * blue[1] + 0.114 * blue[2]) / 255
    pred = Predictor(colour, device="cpu", roi=bottom).predict(f[None])
    np.testing.assert_allclose(pred.brightness[0], luma, atol=1e-4)
    with pytest.raises(ValueError, match="no pixel"):
        Predictor(colour, roi=np.zeros((518, 518), bool))


def test_brightness_and_usable(tiny):
    frames = np.zeros((4, 518, 518, 3), np.uint8)
    frames[1] = 255
    frames[2] = _frames(1)[0]
    frames[3] = 128
    frames[3, :, :259] = 136  # a faint edge: std = 4 grey levels > threshold
    pred = Predictor(tiny, device="cpu", batch_size=3).predict(frames)
    np.testing.assert_allclose(pred.brightness[:2], [0.0, 1.0], atol=1e-6)
    assert 0.4 < pred.brightness[2] < 0.6
    assert pred.usable.tolist() == [False, False, True, True]


def test_batching_does_not_change_results(tiny):
    frames = _frames(5, seed=2)
    a = Predictor(tiny, device="cpu", batch_size=2).predict(frames)
    b = Predictor(tiny, device="cpu", batch_size=16).predict(frames)
    np.testing.assert_array_equal(a.probability, b.probability)
    np.testing.assert_allclose(a.fraction, b.fraction, atol=1e-6)
    np.testing.assert_allclose(a.brightness, b.brightness, atol=1e-6)


def test_bf16_autocast_on_cpu_when_asked(tiny):
    pred = Predictor(tiny, device="cpu", amp="bf16").predict(_frames(2))
    np.testing.assert_allclose(pred.fraction.sum(axis=1), 1.0, atol=1e-6)
    assert Predictor(tiny, device="cpu").amp_dtype is None  # auto: none on CPU
    with pytest.raises(ValueError, match="amp"):
        Predictor(tiny, device="cpu", amp="int4")


def test_input_checks_and_empty_batch(tiny):
    p = Predictor(tiny, device="cpu")
    assert p.input_size == 518
    with pytest.raises(ValueError, match="518"):
        p.predict(np.zeros((1, 300, 300, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        p.predict(np.zeros((1, 518, 518, 3), np.float32))
    empty = p.predict(np.zeros((0, 518, 518, 3), np.uint8))
    assert len(empty) == 0 and empty.probability.shape == (0, 6, 37, 37)


def test_predict_images_resizes_and_converts(colour):
    imgs = [
        Image.new("RGB", (800, 600), COLUMN_RGB),
        Image.new("RGBA", (100, 50), (*CLASS_COLORS["background"], 255)),
        Image.new("L", (64, 64), 200),
    ]
    pred = Predictor(colour, device="cpu").predict_images(imgs)
    assert pred.fraction[0, COL] == 1.0
    assert pred.fraction[1, BG] == 1.0
    assert pred.fraction[2, BG] == 1.0


def test_quantization_round_trip():
    rng = np.random.default_rng(0)
    p = rng.random((1000,)).astype(np.float32)
    p[:3] = [0.0, 1.0, 0.5]
    q = quantize_probability(p)
    assert q.dtype == np.uint8 and q.max() <= 254
    back = dequantize_probability(q)
    assert np.abs(back - p).max() <= 1 / 254
    assert np.abs(back - p).max() <= 0.5 / 254 + 1e-7
    assert q[0] == 0 and q[1] == 254 and q[2] == 127
    with_nan = quantize_probability(np.array([np.nan, 0.25], np.float32))
    assert with_nan[0] == FILL_VALUE
    restored = dequantize_probability(with_nan)
    assert np.isnan(restored[0]) and restored[1] == pytest.approx(64 / 254)


def test_anomaly_scores_come_from_the_same_pass_and_match_the_scorer(tiny):
    """With a scorer, segmentation is unchanged and scores equal the scorer's own pass."""
    from plumenet.anomaly.fit import fit_padim
    from plumenet.anomaly.scorer import AnomalyScorer

    rng = np.random.default_rng(3)
    s = tiny.model.config.input_size
    baseline = rng.integers(0, 255, (2, 3, s, s, 3), dtype=np.uint8)
    scorer = AnomalyScorer(fit_padim(tiny, iter(baseline), layers=[1], n_channels=8), tiny)
    predictor = Predictor(tiny, device="cpu", batch_size=2)
    frames = rng.integers(0, 255, (3, s, s, 3), dtype=np.uint8)
    plain = predictor.predict(frames)
    both = predictor.predict(frames, scorer=scorer)
    assert plain.anomaly is None and both.anomaly.shape == (3,)
    np.testing.assert_array_equal(both.fraction, plain.fraction)
    assert np.abs(both.probability.astype(int) - plain.probability.astype(int)).max() <= 1
    np.testing.assert_allclose(both.anomaly, scorer.score_frames(frames), rtol=1e-4)
