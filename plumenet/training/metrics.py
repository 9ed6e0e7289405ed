"""Pixel-level segmentation metrics (the paper's Table 1 and Figure 3), in plain numpy.

Everything starts from a confusion matrix ``cm`` whose row ``i``, column ``j`` counts
pixels of true class ``i`` predicted as class ``j``. Matrices add: accumulate one per
image and sum them.

Conventions for classes that are rare or absent (NaN means "undefined", never zero):

- precision = TP / (TP + FP): NaN when the class is never predicted;
- recall = TP / (TP + FN): NaN when the class is absent from the truth;
- F1 = 2 P R / (P + R): NaN when P or R is NaN; 0 when both are 0;
- IoU = TP / (TP + FP + FN): NaN when the class is absent from both truth and
  prediction; a class absent from the truth but predicted gets precision 0, recall
  NaN, IoU 0;
- mean IoU is the ``nanmean`` over classes (undefined classes do not count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "confusion_matrix",
    "normalize_rows",
    "segmentation_metrics",
    "to_jsonable",
]


def confusion_matrix(
    true: np.ndarray, pred: np.ndarray, num_classes: int = 6, ignore: int | None = None
) -> np.ndarray:
    """``num_classes x num_classes`` int64 counts (rows: truth, columns: prediction).

    ``true`` and ``pred`` are integer arrays of one shape. Pixels whose truth equals
    ``ignore`` are left out; any other value outside ``0..num_classes-1`` is an error.
    """
    true = np.asarray(true)
    pred = np.asarray(pred)
    if true.shape != pred.shape:
        raise ValueError(f"truth shape {true.shape} differs from prediction shape {pred.shape}")
    t = true.reshape(-1).astype(np.int64)
    p = pred.reshape(-1).astype(np.int64)
    if ignore is not None:
        keep = t != ignore
        t, p = t[keep], p[keep]
    for name, arr in (("truth", t), ("prediction", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            bad = int(arr.max() if arr.max() >= num_classes else arr.min())
            raise ValueError(f"{name} holds class index {bad}; valid are 0..{num_classes - 1}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix (each true-class row sums to 1; NaN for empty rows)."""
    cm = np.asarray(cm)
    return _div(cm, np.broadcast_to(cm.sum(axis=1, keepdims=True), cm.shape))


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def segmentation_metrics(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Per-class and overall metrics from a confusion matrix (see module docstring).

    Returns ``{"classes": {name: {gt_pixels, pred_pixels, precision, recall, f1, iou}},
    "pixel_accuracy", "pixel_accuracy_no_background", "mean_iou", "total_pixels",
    "confusion_matrix" (counts, list of lists), "confusion_matrix_normalized"}``. Values
    are floats with NaN where undefined. ``pixel_accuracy_no_background`` is the share
    of correctly classified pixels among those whose *true* class is not the first
    class (``background``), as in the paper.
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = len(class_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {n} class names")
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _div(tp, predicted)
    recall = _div(tp, gt)
    with np.errstate(invalid="ignore"):
        f1 = np.where(
            np.isnan(precision) | np.isnan(recall),
            np.nan,
            _div(2 * precision * recall, precision + recall),
        )
    f1 = np.where((precision == 0) & (recall == 0), 0.0, f1)
    iou = _div(tp, gt + predicted - tp)
    total = int(cm.sum())
    no_bg_total = int(gt[1:].sum())
    classes = {
        name: {
            "gt_pixels": int(gt[i]),
            "pred_pixels": int(predicted[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "iou": float(iou[i]),
        }
        for i, name in enumerate(class_names)
    }
    valid_iou = iou[~np.isnan(iou)]
    return {
        "classes": classes,
        "pixel_accuracy": float(tp.sum() / total) if total else math.nan,
        "pixel_accuracy_no_background": float(tp[1:].sum() / no_bg_total)
        if no_bg_total
        else math.nan,
        "mean_iou": float(valid_iou.mean()) if valid_iou.size else math.nan,
        "total_pixels": total,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": normalize_rows(cm).tolist(),
    }


def to_jsonable(value: Any) -> Any:
    """Replace NaN floats (recursively) by ``None`` so the result is strict JSON."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return _nan_to_none(value)
    return value
