"""AUROC and ground-truth labels for anomaly scores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from plumenet.anomaly.evaluation import auroc, labels_from_truth


def _brute_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos = scores[labels.astype(bool)]
    neg = scores[~labels.astype(bool)]
    total = 0.0
    for p, q in itertools.product(pos, neg):
        total += 1.0 if p > q else 0.5 if p == q else 0.0
    return total / (len(pos) * len(neg))


def test_auroc_matches_pairwise_count_with_ties(rng):
    for _ in range(20):
        n = int(rng.integers(4, 30))
        scores = rng.integers(0, 5, n).astype(float)  # many ties
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        assert auroc(scores, labels) == pytest.approx(_brute_auroc(scores, labels), abs=1e-12)


def test_auroc_extremes_and_errors():
    assert auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == 0.0
    assert auroc([1.0, 1.0, 1.0], [0, 1, 1]) == 0.5
    with pytest.raises(ValueError, match="both anomalous and normal"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        auroc([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        auroc([0.1, 0.2, 0.3], [0, 1])


def test_labels_from_truth_by_time_path_and_label():
    import pandas as pd

    t = pd.date_range("2024-01-02", periods=4, freq="10min", tz="UTC")
    frames = pd.DataFrame({"time": t, "path": [f"/a/f{i}.png" for i in range(4)]})
    truth = pd.DataFrame(
        {
            "time": (t + pd.Timedelta("5s")).strftime("%Y-%m-%dT%H:%M:%SZ")[:3],
            "ash_emissions": [0.0, 0.2, 0.0],
            "lava": [0.0, 0.0, 0.005],
        }
    )
    out = labels_from_truth(truth, frames, threshold=0.001)
    assert out.tolist()[:3] == [0.0, 1.0, 1.0]
    assert np.isnan(out.iloc[3])
    by_name = pd.DataFrame({"path": ["f1.png", "f3.png"], "label": ["anomalous", "normal"]})
    out = labels_from_truth(by_name, frames)
    assert out.iloc[1] == 1.0 and out.iloc[3] == 0.0 and np.isnan(out.iloc[0])
    with pytest.raises(ValueError, match="neither a 'label' column nor emission fraction"):
        labels_from_truth(pd.DataFrame({"time": t, "x": 1}), frames)
