"""Plume geometry from class maps: exact on hand-made maps, within one patch of the truth on
synthetic scenes (true maps and the demo model), and wired through the predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from plumenet.classes import MODEL_CLASSES, PLUME_KINDS, merge_labels
from plumenet.inference.geometry import plume_geometry

COLUMN = MODEL_CLASSES.index("eruption_column")
ASH = MODEL_CLASSES.index("ash_emissions")
LAVA = MODEL_CLASSES.index("lava")
ANY, COL = PLUME_KINDS.index("any_emission"), PLUME_KINDS.index("eruption_column")
#: Scene sizes (width, height) of the synthetic checks: the aspects webcams have, kept small.
SIZES = ((480, 360), (640, 360), (360, 480), (400, 400))


def _robust_top(mask: np.ndarray, share: float = 0.01) -> int:
    """The truth, computed independently: the lowest row with at most ``share`` of the
    mask's pixels strictly above it (a plain loop over rows)."""
    total = mask.sum()
    above = 0
    best = 0
    for r, count in enumerate(mask.sum(axis=1)):
        if above <= share * total:
            best = r
        above += count
    return best


def test_rectangle_gives_exact_rows_columns_and_width():
    labels = torch.zeros(2, 50, 50, dtype=torch.long)
    labels[0, 10:30, 20:26] = COLUMN  # column: rows 10-29, cols 20-25
    labels[0, 5:8, 30:40] = ASH  # ash above and right: any emission reaches row 5
    g = plume_geometry(labels, share=0.0)
    assert g.top_row[0, COL].item() == 10 and g.top_row[0, ANY].item() == 5
    assert g.center_col[0, COL].item() == pytest.approx(22.5)
    assert g.width[0, COL].item() == 6 and g.width[0, ANY].item() == 20  # cols 20..39
    # frame 1 has no emission at all: NaN everywhere, never 0
    assert torch.isnan(g.top_row[1]).all() and torch.isnan(g.width[1]).all()


def test_a_few_stray_pixels_do_not_move_the_robust_top():
    labels = torch.zeros(1, 100, 100, dtype=torch.long)
    labels[0, 40:90, 45:55] = COLUMN  # 500 pixels
    labels[0, 2, 0:4] = COLUMN  # 4 stray pixels (< 1 %) high in the sky
    robust = plume_geometry(labels).top_row[0, COL].item()
    strict = plume_geometry(labels, share=0.0).top_row[0, COL].item()
    assert (robust, strict) == (40, 2)


def test_lava_is_not_a_plume_and_the_roi_excludes_pixels():
    labels = torch.zeros(1, 40, 40, dtype=torch.long)
    labels[0, 0:10, :] = LAVA
    labels[0, 20:30, 0:5] = COLUMN
    assert plume_geometry(labels).top_row[0, ANY].item() == 20
    roi = torch.ones(40, 40, dtype=torch.bool)
    roi[:, :10] = False
    assert torch.isnan(plume_geometry(labels, roi=roi).top_row[0, COL])


def test_rows_and_columns_map_to_the_original_frame():
    labels = torch.zeros(1, 518, 518, dtype=torch.long)
    labels[0, 100:200, 300:310] = COLUMN
    g = plume_geometry(labels, torch.tensor([[1080.0, 1920.0]]), share=0.0)
    assert g.top_row[0, COL].item() == pytest.approx((100 + 0.5) * 1080 / 518 - 0.5)
    assert g.center_col[0, COL].item() == pytest.approx((304.5 + 0.5) * 1920 / 518 - 0.5)
    assert g.width[0, COL].item() == pytest.approx(10 * 1920 / 518)


def test_batch_result_is_the_per_frame_result(rng):
    labels = torch.from_numpy(rng.integers(0, 6, (7, 60, 60)))
    labels[3] = 0  # one empty frame in the batch
    sizes = torch.from_numpy(rng.integers(100, 2000, (7, 2)).astype(np.float32))
    whole = plume_geometry(labels, sizes)
    for i in range(7):
        one = plume_geometry(labels[i : i + 1], sizes[i : i + 1])
        for field in ("top_row", "center_col", "width"):
            torch.testing.assert_close(
                getattr(whole, field)[i], getattr(one, field)[0], equal_nan=True
            )
    truth = _robust_top(labels[0].numpy() == COLUMN)
    assert whole.top_row[0, COL].item() == pytest.approx(
        (truth + 0.5) * sizes[0, 0].item() / 60 - 0.5, rel=1e-5
    )


def test_share_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"share must be in \[0, 0.5\)"):
        plume_geometry(torch.zeros(1, 4, 4, dtype=torch.long), share=0.5)


def _column_scenes(n: int, seed: int):
    """Synthetic scenes with an eruption column: (RGB, true model-class map) at their size."""
    from plumenet.synthetic.render import render_scene
    from plumenet.synthetic.spec import random_scene_spec

    for i in range(n):
        rng = np.random.default_rng([seed, i])
        spec = random_scene_spec(rng, size=SIZES[i % len(SIZES)], activity={"eruption_column"})
        rgb, label8 = render_scene(spec)
        yield rgb, merge_labels(label8)


def _within_one_patch(top: np.ndarray, truth: np.ndarray, heights: np.ndarray) -> np.ndarray:
    return np.abs(top - truth) <= 14 * heights / 518  # one patch at 518, scaled to the frame


def test_true_class_maps_give_the_column_top_within_one_patch():
    """Model-free: the true map, resized to 518 as the worker sees it."""
    maps, sizes, truths = [], [], []
    for _rgb, truth_map in _column_scenes(24, seed=11):
        mask = truth_map == COLUMN
        if not mask.any():
            continue
        small = Image.fromarray(truth_map).resize((518, 518), Image.Resampling.NEAREST)
        maps.append(np.asarray(small))
        sizes.append(mask.shape)
        truths.append(_robust_top(mask))
    assert len(maps) >= 20
    g = plume_geometry(torch.from_numpy(np.stack(maps)).long(), torch.tensor(sizes))
    heights = np.array(sizes)[:, 0]
    ok = _within_one_patch(g.top_row[:, COL].numpy(), np.array(truths), heights)
    assert ok.all(), np.flatnonzero(~ok)


def test_demo_model_column_top_within_one_patch_on_95_percent_of_frames():
    from plumenet.inference.decode import resize_frame
    from plumenet.inference.predictor import Predictor
    from plumenet.model.weights import load_model

    predictor = Predictor(load_model("demo", device="cpu"), device="cpu", batch_size=16)
    frames, sizes, truths = [], [], []
    for rgb, truth_map in _column_scenes(80, seed=7):
        mask = truth_map == COLUMN
        if not mask.any():
            continue
        frames.append(resize_frame(Image.fromarray(rgb), predictor.input_size))
        sizes.append(mask.shape)
        truths.append(_robust_top(mask))
    assert len(frames) >= 60
    pred = predictor.predict(np.stack(frames), frame_sizes=np.array(sizes))
    assert pred.plume_top_row is not None and pred.plume_top_row.shape == (len(frames), 2)
    heights = np.array(sizes)[:, 0]
    ok = _within_one_patch(pred.plume_top_row[:, COL], np.array(truths), heights)
    assert ok.mean() >= 0.95, f"{ok.mean():.1%} of {len(ok)} frames within one patch"
    # wherever the column is seen, so is "any emission" (it counts the column's pixels)
    assert np.isfinite(pred.plume_top_row[np.isfinite(pred.plume_top_row[:, COL]), ANY]).all()


def test_predictor_reports_geometry_in_model_pixels_without_sizes(rng):
    from plumenet.inference.predictor import Predictor
    from tests.helpers.model import tiny_loaded_model

    predictor = Predictor(tiny_loaded_model(), device="cpu", batch_size=3)
    size = predictor.input_size
    frames = rng.integers(0, 255, (4, size, size, 3), dtype=np.uint8)
    plain = predictor.predict(frames, return_class_map=True)
    sized = predictor.predict(frames, frame_sizes=np.full((4, 2), 2.0 * size))
    assert plain.plume_top_row is not None and sized.plume_top_row is not None
    assert np.isfinite(plain.plume_top_row).any()  # the random model does see "emission"
    # the same class map measured in the predictor and here
    direct = plume_geometry(torch.from_numpy(plain.class_map).long())
    np.testing.assert_allclose(plain.plume_top_row, direct.top_row.numpy(), equal_nan=True)
    # twice the frame size: coordinates scale as (r + 0.5) * 2 - 0.5
    expected = (plain.plume_top_row + 0.5) * 2 - 0.5
    np.testing.assert_allclose(sized.plume_top_row, expected, rtol=1e-5, equal_nan=True)
    with pytest.raises(ValueError, match=r"frame_sizes must be \(4, 2\)"):
        predictor.predict(frames, frame_sizes=np.ones((3, 2)))
