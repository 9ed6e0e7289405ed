"""``plumenet predict``: overlays + JSON per image, broken files reported, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from plumenet.classes import CLASS_COLORS, MODEL_CLASSES
from plumenet.cli import main
from plumenet.model.loaded import weights_digest
from plumenet.model.weights import save_model
from tests.helpers.model import COLUMN_RGB, colour_loaded_model, tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = tiny_model(seed=1)
    path = save_model(model, tmp_path_factory.mktemp("w") / "tiny", model_id="tiny-cli")
    return path, weights_digest(model.state_dict())


def _images(tmp_path):
    good_png = tmp_path / "a.png"
    Image.new("RGB", (300, 200), (90, 140, 200)).save(good_png)
    good_jpg = tmp_path / "b.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(good_jpg)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good_jpg.read_bytes()[:500])
    return good_png, good_jpg, broken


def test_predict_writes_overlays_and_json_and_reports_broken_file(tmp_path, model_dir):
    path, digest = model_dir
    good_png, good_jpg, broken = _images(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(good_png),
            str(broken),
            str(good_jpg),
            "--model",
            str(path),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert str(broken) in lines[0] and "truncated" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [
        "a.json",
        "a_overlay.png",
        "b.json",
        "b_overlay.png",
    ]
    doc = json.loads((out / "a.json").read_text())
    assert doc["model"]["id"] == "tiny-cli" and doc["model"]["digest"] == digest
    assert doc["demo_model"] is False and "note" not in doc
    assert list(doc["fractions"]) == list(MODEL_CLASSES)
    assert sum(doc["fractions"].values()) == pytest.approx(1.0, abs=1e-5)
    assert doc["usable"] is False  # a uniform frame
    assert 0 <= doc["brightness"] <= 1
    assert json.loads((out / "b.json").read_text())["usable"] is True
    overlay = Image.open(out / "a_overlay.png")
    assert overlay.size == (300, 200) and overlay.mode == "RGB"


def test_overlay_colours_follow_the_prediction(tmp_path, monkeypatch):
    # The hand-set colour model, saved like any other model directory.
    loaded = colour_loaded_model()
    import plumenet.model.weights as weights_mod

    monkeypatch.setattr(weights_mod, "load_model", lambda spec, device=None: loaded)
    img = np.empty((280, 420, 3), np.uint8)
    img[:140] = COLUMN_RGB
    img[140:] = CLASS_COLORS["background"]
    src = tmp_path / "scene.png"
    Image.fromarray(img).save(src)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["predict", str(src), "--model", "x", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "scene.json").read_text())
    assert doc["fractions"]["eruption_column"] == pytest.approx(0.5, abs=0.03)
    ov = np.asarray(Image.open(out / "scene_overlay.png"), dtype=float)
    expected_top = 0.5 * np.array(COLUMN_RGB) + 0.5 * np.array(CLASS_COLORS["eruption_column"])
    np.testing.assert_allclose(ov[100, 300], expected_top, atol=2)


def test_demo_model_outputs_say_so(tmp_path, monkeypatch):
    import plumenet.model.weights as weights_mod

    demo_dir = save_model(tiny_model(seed=2), tmp_path / "demo-model", model_id="plumenet-demo")
    monkeypatch.setattr(weights_mod, "DEMO_MODEL_DIR", demo_dir)
    good_png, _, _ = _images(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["predict", str(good_png), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "a.json").read_text())
    assert doc["demo_model"] is True and "demo model" in doc["note"]
    assert "demo model" in result.stdout


def test_missing_weights_is_a_user_error_and_writes_nothing(tmp_path):
    good_png, _, _ = _images(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["predict", str(good_png), "--model", str(tmp_path / "nope"), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout.strip() == ""
    assert not out.exists()


def test_same_stem_twice_does_not_overwrite(tmp_path, model_dir):
    path, _ = model_dir
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    for d in ("x", "y"):
        Image.new("RGB", (50, 50), (1, 2, 3)).save(tmp_path / d / "cam.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "x" / "cam.png"),
            str(tmp_path / "y" / "cam.png"),
            "--model",
            str(path),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "cam.json",
        "cam_overlay.png",
        "cam_2.json",
        "cam_2_overlay.png",
    }


@pytest.mark.parametrize("device", ["cuda", "gpu"])
def test_device_this_machine_lacks_is_one_line_and_writes_nothing(tmp_path, model_dir, device):
    import torch

    if device == "cuda":  # one index past the last GPU: absent on every machine
        device = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    path, _ = model_dir
    good_png, _, _ = _images(tmp_path)
    out = tmp_path / "out"
    args = ["predict", str(good_png), "--model", str(path), "--out", str(out), "--device", device]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    expected = {
        "gpu": "error: --device 'gpu' is not a device: use cpu, cuda, cuda:N, mps or auto",
    }.get(device, f"error: --device {device}: this machine has ")
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert not out.exists()
