"""The bundled demo model (plumenet/assets/demo-model) meets its bar on fresh synthetic frames."""

import json

import pytest

from plumenet.model.weights import DEMO_MODEL_DIR, load_model
from plumenet.training.datasets import ListDataset
from plumenet.training.demo_model import (
    BAR,
    CHECK_STREAM,
    TEST_STREAM,
    TRAIN_STREAM,
    synthetic_frames,
)
from plumenet.training.evaluate import evaluate_model


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", device="cpu")


def test_demo_model_is_bundled_small_and_marked(demo):
    weights = DEMO_MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size <= 5 * 1024 * 1024
    doc = json.loads((DEMO_MODEL_DIR / "config.json").read_text())
    meta = doc["metadata"]
    assert meta["demo"] is True and demo.is_demo
    assert meta["command"].startswith("python -m plumenet.training.demo_model")
    held = meta["held_out"]
    assert held["frames"] == 200 and held["meets_bar"] is True
    assert held["seed_stream"] == [meta["seed"], TEST_STREAM]
    assert held["pixel_accuracy_no_background"] >= BAR["pixel_accuracy_no_background"]
    assert held["classes"]["eruption_column"]["iou"] >= BAR["iou_eruption_column"]


def test_demo_model_meets_bar_on_fresh_frames(demo):
    meta = demo.metadata
    # frames from a seed and stream never used for training, validation or the held-out test
    frames = synthetic_frames(
        48, seed=meta["seed"] + 1000, stream=CHECK_STREAM, height=meta.get("frame_height", 224)
    )
    assert CHECK_STREAM not in (TRAIN_STREAM, TEST_STREAM)
    m = evaluate_model(demo, ListDataset(frames))
    assert m["classes"]["eruption_column"]["gt_pixels"] > 10_000  # columns present
    assert m["pixel_accuracy_no_background"] >= BAR["pixel_accuracy_no_background"]
    assert m["classes"]["eruption_column"]["iou"] >= BAR["iou_eruption_column"]
