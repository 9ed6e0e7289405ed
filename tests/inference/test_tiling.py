"""Tiled inference: window placement, blending weights, and a small plume that only
tiling finds.

The detection test uses the hand-set colour model of ``tests.helpers.model`` (a patch
is ``eruption_column`` when its mean colour is close enough to the class colour), not
the bundled demo model: it did not exist when this test was written, and a
deterministic detector makes the test about the tiling arithmetic alone.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from plumenet.classes import CLASS_COLORS, MODEL_CLASSES
from plumenet.inference.decode import resize_frame
from plumenet.inference.predictor import Predictor
from plumenet.inference.quality import frame_quality
from plumenet.inference.tiling import _argmax_counts, blend_window, predict_tiled, tile_windows
from tests.helpers.model import COLUMN_RGB, colour_loaded_model

COL = MODEL_CLASSES.index("eruption_column")


@pytest.mark.parametrize(
    ("h", "w", "tile", "stride"),
    [(3000, 4000, 518, 400), (518, 518, 518, 518), (100, 1000, 518, 300), (1037, 1037, 518, 259)],
)
def test_windows_cover_the_image_and_end_flush(h, w, tile, stride):
    wins = tile_windows(h, w, tile, stride)
    covered = np.zeros((h, w), bool)
    for y, x in wins:
        assert y >= 0 and x >= 0
        assert y + min(tile, h) <= h and x + min(tile, w) <= w
        covered[y : y + tile, x : x + tile] = True
    assert covered.all()
    ys = sorted({y for y, _ in wins})
    xs = sorted({x for _, x in wins})
    assert ys[0] == 0 and xs[0] == 0
    assert ys[-1] == max(0, h - tile) and xs[-1] == max(0, w - tile)
    assert all(b - a <= stride for a, b in itertools.pairwise(ys))


def test_window_counts_and_validation():
    assert len(tile_windows(3000, 4000, 518, 400)) == 8 * 10
    assert tile_windows(518, 518, 518, 518) == [(0, 0)]
    with pytest.raises(ValueError, match="stride"):
        tile_windows(1000, 1000, 518, 600)
    with pytest.raises(ValueError, match="stride"):
        tile_windows(1000, 1000, 518, 0)


def test_blend_window_is_smooth_and_never_zero():
    w = blend_window(64)
    assert w.shape == (64, 64)
    assert w.min() >= 0.05 * 0.05 - 1e-7 and w.min() > 0
    assert w.max() == pytest.approx(1.0, abs=1e-2)
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    assert w[32, 32] > w[32, 0] and w[32, 32] > w[0, 32]
    assert blend_window((10, 30)).shape == (10, 30)


def test_argmax_counts_match_full_resolution_interpolation():
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(6, 37, 53, generator=gen)
    for h, w in [(300, 411), (37, 53), (1000, 999)]:
        full = F.interpolate(p[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        ref = torch.bincount(full.argmax(0).reshape(-1), minlength=6).numpy()
        # equal up to float rounding at near-ties (a few pixels in a million)
        np.testing.assert_allclose(
            _argmax_counts(p, h, w, rows=7), ref, rtol=0, atol=1e-5 * h * w + 1
        )


def _scene(h: int = 3000, w: int = 4000) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[: h // 2] = CLASS_COLORS["background"]
    img[h // 2 :] = CLASS_COLORS["land"]
    return img


@pytest.mark.slow
def test_small_plume_found_by_tiling_and_lost_by_plain_resize():
    img = _scene()
    y0, x0 = 1000, 2003
    img[y0 : y0 + 40, x0 : x0 + 40] = COLUMN_RGB  # a 40 x 40 px eruption column
    predictor = Predictor(colour_loaded_model(), device="cpu", batch_size=16)

    plain = predictor.predict(resize_frame(Image.fromarray(img), 518)[None])
    assert plain.fraction[0, COL] == 0.0
    assert plain.probability[0, COL].max() < 0.5 * 254

    tiled = predict_tiled(predictor, img, tile=518, stride=400, scale=0.25)
    prob, fraction = tiled.probability, tiled.fraction
    assert prob.shape == (6, 750, 1000) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-5)
    assert fraction.shape == (6,) and fraction.sum() == pytest.approx(1.0, abs=1e-6)
    # found, with about the right area (1600 px of 12 M; patch granularity blurs the edge)
    assert 0.3 * 1600 / 12e6 < fraction[COL] < 3 * 1600 / 12e6
    # and in the right place
    blob = prob[COL, (y0 + 20) // 4, (x0 + 20) // 4]
    assert blob > 0.9
    far = prob[COL].copy()
    far[(y0 - 40) // 4 : (y0 + 80) // 4, (x0 - 40) // 4 : (x0 + 80) // 4] = 0
    assert far.max() < 0.05


def test_tiled_equals_plain_when_one_tile_covers_the_frame():
    img = _scene(518, 518)
    img[100:300, 100:300] = COLUMN_RGB
    predictor = Predictor(colour_loaded_model(), device="cpu")
    plain = predictor.predict(img[None])
    tiled = predict_tiled(predictor, img, tile=518, stride=518)
    assert tiled.probability.shape == (6, 518, 518)
    np.testing.assert_allclose(tiled.fraction, plain.fraction[0], atol=1e-6)
    np.testing.assert_allclose(tiled.brightness, plain.brightness[0], atol=1e-6)
    assert tiled.usable == bool(plain.usable[0])


def test_tiled_quality_follows_the_predictor_rule_inside_the_roi():
    """A large tiled frame with an ROI gets the brightness/usability of frame_quality."""
    img = _scene(600, 900)  # top half background (blue), bottom half land
    img[:300, 450:] = 255  # a white patch in the top right
    top_left = np.zeros((600, 900), bool)
    top_left[:300, :450] = True  # uniform background only: unusable
    top = np.zeros((60, 90), bool)  # ROI at another resolution: resized (nearest)
    top[:30] = True
    predictor = Predictor(colour_loaded_model(), device="cpu")
    frame = torch.from_numpy(img).permute(2, 0, 1)[None]
    for roi, full in ((top_left, top_left), (top, np.repeat(np.repeat(top, 10, 0), 10, 1))):
        tiled = predict_tiled(predictor, img, tile=518, stride=400, scale=0.25, roi=roi)
        brightness, usable = frame_quality(frame, torch.from_numpy(full))
        assert tiled.brightness == pytest.approx(float(brightness[0]), abs=1e-6)
        assert tiled.usable == bool(usable[0])
    assert not predict_tiled(predictor, img, 518, 400, scale=0.25, roi=top_left).usable
    assert predict_tiled(predictor, img, 518, 400, scale=0.25, roi=top).usable
    # The ROI counts: brightness inside the top-left ROI is the background's luminance.
    blue = np.array(CLASS_COLORS["background"], float)
    luma = (0.299 * blue[0] + 0.587 * blue[1] + 0.114 * blue[2]) / 255
    tiled = predict_tiled(predictor, img, 518, 400, scale=0.25, roi=top_left)
    assert tiled.brightness == pytest.approx(luma, abs=1e-4)
    whole = predict_tiled(predictor, img, 518, 400, scale=0.25)
    assert whole.brightness != pytest.approx(luma, abs=1e-3)
    with pytest.raises(ValueError, match="no pixel"):
        predict_tiled(predictor, img, 518, 400, roi=np.zeros((60, 90), bool))


def test_predict_tiled_rejects_bad_input():
    predictor = Predictor(colour_loaded_model(), device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        predict_tiled(predictor, np.zeros((100, 100), np.uint8), 518, 400)
    with pytest.raises(ValueError, match="scale"):
        predict_tiled(predictor, np.zeros((100, 100, 3), np.uint8), 518, 400, scale=2.0)


def test_tiled_fractions_count_only_the_roi():
    """Fractions of a tiled frame are shares of the ROI's pixels, as the predictor counts them."""
    img = np.zeros((600, 900, 3), np.uint8)
    img[:] = CLASS_COLORS["background"]
    img[:, 450:] = COLUMN_RGB  # right half: eruption column for the colour model
    predictor = Predictor(colour_loaded_model(), device="cpu")
    whole = predict_tiled(predictor, img, 518, 400, scale=0.25)
    assert whole.fraction[COL] == pytest.approx(0.5, abs=0.05)
    right = np.zeros((600, 900), bool)
    right[:, 500:] = True  # well inside the column half
    inside = predict_tiled(predictor, img, 518, 400, scale=0.25, roi=right)
    assert inside.fraction[COL] == pytest.approx(1.0, abs=0.02)
    left = ~right
    left[:, 400:] = False  # well inside the background half
    outside = predict_tiled(predictor, img, 518, 400, scale=0.25, roi=left)
    assert outside.fraction[COL] == pytest.approx(0.0, abs=0.02)
    assert outside.fraction.sum() == pytest.approx(1.0, abs=1e-5)
