import dataclasses
import json

import numpy as np
import pytest
import torch

from plumenet.errors import ConfigError
from plumenet.model.network import MODEL_CONFIGS, build_model
from plumenet.model.weights import load_model
from plumenet.training.loop import (
    ArrayDataset,
    ListDataset,
    TrainConfig,
    _tversky_loss,
    evaluate_model,
    predict_labels,
    train,
)
from plumenet.training.metrics import confusion_matrix, segmentation_metrics

SIZE = 56


def tiny_config(size=SIZE):
    base = MODEL_CONFIGS["tiny"]
    return dataclasses.replace(
        base, input_size=size, backbone={**base.backbone, "image_size": size}
    )


def scenes(n, seed, size=SIZE):
    """Blue sky (0) over brown land (1) with a red column (2): easy to learn."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        horizon = int(rng.integers(size // 2, 3 * size // 4))
        images[i, :horizon] = (70, 130, 200)
        images[i, horizon:] = (110, 80, 50)
        labels[i, horizon:] = 1
        x0 = int(rng.integers(0, size - 16))
        top = int(rng.integers(0, horizon - 12))
        images[i, top:horizon, x0 : x0 + 14] = (200, 30, 30)
        labels[i, top:horizon, x0 : x0 + 14] = 2
        images[i] = np.clip(images[i] + rng.normal(0, 6, images[i].shape), 0, 255).astype(np.uint8)
    return ArrayDataset(images, labels)


FAST = {"batch_size": 8, "lr": 3e-3, "augment": False, "device": "cpu", "patience": None}


def test_training_beats_untrained_head(tmp_path):
    model = build_model(tiny_config(), seed=0)
    tr, va = scenes(24, 1), scenes(8, 2)
    before = evaluate_model(model, va)["mean_iou"]
    result = train(model, tr, va, TrainConfig(epochs=6, **FAST), out_dir=tmp_path)
    after = evaluate_model(model, va)
    assert after["mean_iou"] > before + 0.15, (before, after["mean_iou"])
    assert after["classes"]["eruption_column"]["iou"] > 0.3
    assert result.best_val_miou == pytest.approx(max(r["val_mean_iou"] for r in result.history))
    assert [r["epoch"] for r in result.history] == list(range(1, 7))
    assert list(result.history_frame().columns)[:3] == ["epoch", "train_loss", "val_loss"]
    # the best model is saved and loadable as --model OUT
    loaded = load_model(str(tmp_path))
    assert loaded.metadata["training"]["best_epoch"] == result.best_epoch
    assert torch.equal(loaded.model.head.conv2.weight, model.head.conv2.weight)
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "history.csv").read_text().startswith("epoch,train_loss")
    # head only: the frozen backbone did not move
    fresh = build_model(tiny_config(), seed=0)
    for a, b in zip(fresh.backbone.parameters(), model.backbone.parameters(), strict=True):
        assert torch.equal(a, b)


def test_interrupted_run_resumes_like_uninterrupted(tmp_path):
    tr, va = scenes(12, 3), scenes(4, 4)
    cfg = TrainConfig(epochs=3, **{**FAST, "augment": True})

    full = build_model(tiny_config(), seed=0)
    train(full, tr, va, cfg, out_dir=tmp_path / "full")

    def stop_after_2(event):
        if event.kind == "epoch" and event.epoch == 2:
            raise KeyboardInterrupt("stopped after epoch 2")

    part = build_model(tiny_config(), seed=0)
    with pytest.raises(KeyboardInterrupt, match="stopped after epoch 2"):
        train(part, tr, va, cfg, out_dir=tmp_path / "part", progress=stop_after_2)
    state = json.loads((tmp_path / "part" / "checkpoint.json").read_text())
    assert state["epoch"] == 2

    epochs_seen = []
    resumed = build_model(tiny_config(), seed=0)
    result = train(
        resumed,
        tr,
        va,
        cfg,
        out_dir=tmp_path / "part",
        progress=lambda e: epochs_seen.append(e.epoch) if e.kind == "epoch" else None,
    )
    assert epochs_seen == [3]
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    ref = json.loads((tmp_path / "full" / "checkpoint.json").read_text())
    assert [r["train_loss"] for r in result.history] == pytest.approx(
        [r["train_loss"] for r in ref["history"]], rel=1e-5
    )
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_early_stopping(tmp_path):
    model = build_model(tiny_config(), seed=0)
    cfg = TrainConfig(epochs=10, **{**FAST, "lr": 1e-12, "patience": 2})
    result = train(model, scenes(8, 5), scenes(4, 6), cfg)
    assert result.stopped_early
    assert len(result.history) == 3 and result.best_epoch == 1


def test_tversky_loss_values():
    target = torch.tensor([[[0, 1], [2, 255]]])
    perfect = torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    w = torch.ones(3)
    assert _tversky_loss(perfect, target, 0.3, 0.7, w).item() < 1e-3
    wrong = perfect.roll(1, dims=1)
    assert _tversky_loss(wrong, target, 0.3, 0.7, w).item() > 0.5


@pytest.mark.parametrize("loss", ["tversky", "ce+tversky"])
def test_other_losses_train(loss):
    model = build_model(tiny_config(), seed=0)
    cfg = TrainConfig(epochs=2, loss=loss, **FAST)
    result = train(model, scenes(8, 7), scenes(4, 8), cfg)
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


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


def test_train_config_errors():
    with pytest.raises(ConfigError, match="loss 'dice' is unknown"):
        TrainConfig(loss="dice")
    with pytest.raises(ConfigError, match="unknown classes \\['smoke'\\]"):
        TrainConfig(class_weights={"smoke": 2.0})
    with pytest.raises(ConfigError, match="learning rate"):
        TrainConfig(lr=0)
    cfg = TrainConfig(epochs=2, lr=1.0, schedule="cosine", warmup_epochs=1)
    assert cfg.lr_at(0, 4) == pytest.approx(0.25)
    assert cfg.lr_at(4, 4) == pytest.approx(1.0)
    assert cfg.lr_at(7, 4) < 0.2
    assert TrainConfig().weight_vector() == [1.0, 1.0, 3.0, 1.0, 1.0, 3.0]


def test_empty_split_is_a_user_error():
    model = build_model(tiny_config(), seed=0)
    empty = ArrayDataset(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(ConfigError, match="validation 0"):
        train(model, scenes(2, 0), empty, TrainConfig(epochs=1))
