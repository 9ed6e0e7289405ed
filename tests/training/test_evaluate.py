import numpy as np

from plumenet.model.registry import build_model
from plumenet.training.datasets import ListDataset
from plumenet.training.evaluate import evaluate_model, predict_labels
from plumenet.training.metrics import confusion_matrix, segmentation_metrics
from tests.helpers.training import SIZE, tiny_config


def test_evaluate_at_original_resolution_matches_direct_computation():
    model = build_model(tiny_config(), seed=0)
    rng = np.random.default_rng(0)
    pairs = [
        (
            rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
            rng.integers(0, 6, (h, w)).astype(np.uint8),
        )
        for h, w in ((40, 70), (90, 60))
    ]
    pairs[1][1][:5] = 255  # unlabelled rows are ignored
    result = evaluate_model(model, ListDataset(pairs, names=["a", "b"]))
    cm = np.zeros((6, 6), np.int64)
    for img, mask in pairs:
        pred = predict_labels(model, img)
        assert pred.shape == mask.shape
        cm += confusion_matrix(mask, pred, 6, ignore=255)
    expected = segmentation_metrics(cm, model.classes)
    assert result["confusion_matrix"] == expected["confusion_matrix"]
    assert result["total_pixels"] == 40 * 70 + 90 * 60 - 5 * 60
    assert result["n_images"] == 2
    assert [r["image"] for r in result["per_image"]] == ["a", "b"]
    assert result["per_image"][1]["pixels"] == 90 * 60 - 5 * 60
    small = evaluate_model(model, ListDataset(pairs), at_original_resolution=False)
    assert small["total_pixels"] <= 2 * SIZE * SIZE
