import json
import math

import numpy as np
import pytest

from plumenet.training.metrics import (
    confusion_matrix,
    normalize_rows,
    segmentation_metrics,
    to_jsonable,
)

NAMES = ("background", "land", "column")


def test_confusion_matrix_counts_and_ignore():
    true = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = confusion_matrix(true, pred, num_classes=3, ignore=255)
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64


def test_confusion_matrix_accumulates():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, size=(2, 8, 8))
    p = rng.integers(0, 3, size=(2, 8, 8))
    total = confusion_matrix(t[0], p[0], 3) + confusion_matrix(t[1], p[1], 3)
    np.testing.assert_array_equal(total, confusion_matrix(t, p, 3))
    assert total.sum() == 128


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="class index 3"):
        confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="prediction holds class index 7"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), 3)


def test_metrics_hand_computed():
    # truth rows, predicted columns
    cm = np.array([[8, 2, 0], [1, 6, 3], [0, 0, 0]])
    m = segmentation_metrics(cm, NAMES)
    bg, land, col = (m["classes"][n] for n in NAMES)
    assert bg["gt_pixels"] == 10 and land["gt_pixels"] == 10 and col["gt_pixels"] == 0
    assert bg["precision"] == pytest.approx(8 / 9)
    assert bg["recall"] == pytest.approx(0.8)
    assert bg["f1"] == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert bg["iou"] == pytest.approx(8 / 11)
    assert land["precision"] == pytest.approx(6 / 8)
    assert land["recall"] == pytest.approx(0.6)
    assert land["iou"] == pytest.approx(6 / 12)
    # absent from truth but predicted: precision 0, recall undefined, IoU 0
    assert col["precision"] == 0.0
    assert math.isnan(col["recall"])
    assert math.isnan(col["f1"])
    assert col["iou"] == 0.0
    assert m["pixel_accuracy"] == pytest.approx(14 / 20)
    # only pixels whose true class is not background: land row, 6 of 10 right
    assert m["pixel_accuracy_no_background"] == pytest.approx(0.6)
    assert m["mean_iou"] == pytest.approx((8 / 11 + 6 / 12 + 0) / 3)
    assert m["total_pixels"] == 20


def test_class_absent_everywhere_is_nan_and_left_out_of_mean():
    cm = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 0]])
    m = segmentation_metrics(cm, NAMES)
    col = m["classes"]["column"]
    assert math.isnan(col["precision"]) and math.isnan(col["recall"]) and math.isnan(col["iou"])
    assert m["mean_iou"] == 1.0
    assert m["pixel_accuracy"] == 1.0


def test_zero_f1_when_precision_and_recall_zero():
    cm = np.array([[0, 4], [3, 0]])
    m = segmentation_metrics(cm, ("a", "b"))
    assert m["classes"]["a"]["f1"] == 0.0
    assert m["classes"]["b"]["iou"] == 0.0
    assert m["pixel_accuracy"] == 0.0


def test_normalized_rows_and_json():
    cm = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    norm = normalize_rows(cm)
    np.testing.assert_allclose(norm[0], [0.75, 0.25, 0.0])
    assert np.isnan(norm[1]).all()
    np.testing.assert_allclose(norm[2], [0.25, 0.25, 0.5])
    m = segmentation_metrics(cm, NAMES)
    text = json.dumps(to_jsonable(m), allow_nan=False)
    assert '"recall": null' in text


def test_shape_mismatch_with_names():
    with pytest.raises(ValueError, match="does not match 2 class names"):
        segmentation_metrics(np.zeros((3, 3), dtype=int), ("a", "b"))
