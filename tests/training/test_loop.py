import json

import numpy as np
import pytest
import torch

from plumenet.errors import ConfigError
from plumenet.model.registry import build_model
from plumenet.model.weights import load_model
from plumenet.training.datasets import ArrayDataset
from plumenet.training.evaluate import evaluate_model
from plumenet.training.loop import TrainConfig, train
from tests.helpers.training import scenes, tiny_config

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


@pytest.mark.parametrize("loss", ["tversky", "ce+tversky"])
def test_other_losses_train(loss):
    model = build_model(tiny_config(), seed=0)
    cfg = TrainConfig(epochs=2, loss=loss, **FAST)
    result = train(model, scenes(8, 7), scenes(4, 8), cfg)
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


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
