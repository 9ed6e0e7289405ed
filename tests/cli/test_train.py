import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from plumenet.cli import main
from plumenet.model.registry import MODEL_CONFIGS, build_model
from plumenet.model.weights import load_model, save_model
from plumenet.training.evaluate import evaluate_model
from plumenet.training.labelme import LabelMeDataset, load_labelme, load_labelme_dir

W, H = 64, 48


def _scene(path, rng):
    """A sky / land / red column picture and its LabelMe file (external PNG)."""
    horizon = int(rng.integers(24, 36))
    x0 = int(rng.integers(4, W - 20))
    top = int(rng.integers(2, horizon - 10))
    img = Image.new("RGB", (W, H), (70, 130, 200))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, horizon, W - 1, H - 1], fill=(110, 80, 50))
    draw.polygon([(x0, top), (x0 + 13, top), (x0 + 13, horizon), (x0, horizon)], fill=(200, 30, 30))
    arr = np.asarray(img).astype(float) + rng.normal(0, 5, (H, W, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path.with_suffix(".png"))
    shapes = [
        {"label": "land", "shape_type": "rectangle", "points": [[0, horizon], [W - 1, H - 1]]},
        {
            "label": "eruption_column",
            "shape_type": "polygon",
            "points": [[x0, top], [x0 + 13, top], [x0 + 13, horizon], [x0, horizon]],
        },
    ]
    doc = {
        "shapes": shapes,
        "imagePath": path.with_suffix(".png").name,
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
        "flags": {},
    }
    path.write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelme")
    rng = np.random.default_rng(0)
    for v in range(5):
        folder = root / "CAM" / f"view{v}"
        folder.mkdir(parents=True)
        for k in range(4):
            _scene(folder / f"img{k}.json", rng)
    return root


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    base = MODEL_CONFIGS["tiny"]
    cfg = dataclasses.replace(base, input_size=56, backbone={**base.backbone, "image_size": 56})
    out = tmp_path_factory.mktemp("tiny-model")
    save_model(build_model(cfg, seed=0), out, model_id="tiny-untrained")
    return out


@pytest.fixture(scope="module")
def trained(labelled, tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    args = [
        "train",
        "--data",
        str(labelled),
        "--out",
        str(out),
        "--from",
        str(tiny_dir),
        "--epochs",
        "5",
        "--lr",
        "5e-3",
        "--batch-size",
        "8",
        "--no-augment",
        "--device",
        "cpu",
        "--patience",
        "0",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_model_and_beats_untrained_head(trained, tiny_dir):
    out, output = trained
    assert f"--model {out}" in output
    for name in (
        "model.safetensors",
        "config.json",
        "checkpoint.safetensors",
        "checkpoint.json",
        "curves.png",
        "history.csv",
        "split.json",
    ):
        assert (out / name).is_file(), name
    split = json.loads((out / "split.json").read_text())
    views = [{p.split("/")[-2] for p in split[k]} for k in ("train", "validation", "test")]
    assert not (views[0] & views[1]) and not (views[0] & views[2]) and not (views[1] & views[2])
    val = LabelMeDataset([load_labelme(p) for p in split["validation"]])
    untrained = evaluate_model(load_model(str(tiny_dir)), val)["mean_iou"]
    state = json.loads((out / "checkpoint.json").read_text())
    assert state["epoch"] == 5
    best = max(r["val_mean_iou"] for r in state["history"])
    assert best > untrained + 0.1, (untrained, best)
    assert (out / "test" / "metrics.json").is_file()


def test_evaluate_writes_table_consistent_with_direct_computation(trained, labelled, tmp_path):
    out, _ = trained
    ev = tmp_path / "ev"
    result = CliRunner().invoke(
        main, ["evaluate", "--model", str(out), "--data", str(labelled), "--out", str(ev)]
    )
    assert result.exit_code == 0, result.output
    assert "eruption_column" in result.output and "without background" in result.output
    metrics = json.loads((ev / "metrics.json").read_text())
    n = metrics["n_images"]
    assert f"evaluate: {n}/{n} images" in result.output  # progress line (no terminal here)
    for key in (
        "pixel_accuracy",
        "pixel_accuracy_no_background",
        "mean_iou",
        "confusion_matrix",
        "confusion_matrix_normalized",
        "per_image",
        "model",
    ):
        assert key in metrics, key
    for name in (
        "background",
        "land",
        "eruption_column",
        "ash_emissions",
        "non_ash_emissions",
        "lava",
    ):
        assert set(metrics["classes"][name]) >= {"gt_pixels", "precision", "recall", "f1", "iou"}
    assert metrics["classes"]["lava"]["recall"] is None  # absent from truth: undefined
    direct = evaluate_model(load_model(str(out)), LabelMeDataset(load_labelme_dir(labelled)))
    assert metrics["confusion_matrix"] == direct["confusion_matrix"]
    assert metrics["total_pixels"] == 20 * W * H
    assert metrics["classes"]["eruption_column"]["iou"] == pytest.approx(
        direct["classes"]["eruption_column"]["iou"]
    )
    for name in (
        "per_class.csv",
        "confusion_matrix.csv",
        "confusion_counts.csv",
        "confusion_matrix.png",
        "per_image.csv",
    ):
        assert (ev / name).is_file(), name
    assert len((ev / "per_image.csv").read_text().strip().splitlines()) == 21


def test_evaluate_mask_pairs(trained, tmp_path):
    out, _ = trained
    rng = np.random.default_rng(1)
    _scene(tmp_path / "a.json", rng)
    sample = load_labelme(tmp_path / "a.json")
    (tmp_path / "a.json").unlink()
    Image.fromarray(sample.model_mask).save(tmp_path / "a_mask.png")
    ev = tmp_path / "ev"
    result = CliRunner().invoke(
        main, ["evaluate", "--model", str(out), "--data", str(tmp_path), "--out", str(ev)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["n_images"] == 1 and metrics["total_pixels"] == W * H
    bad = np.full((H, W), 7, np.uint8)
    Image.fromarray(bad).save(tmp_path / "a_mask.png")
    result = CliRunner().invoke(main, ["evaluate", "--model", str(out), "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds class index 7" in result.output and "--mask-classes label" in result.output


def test_train_needs_two_viewpoints(tmp_path, tiny_dir):
    rng = np.random.default_rng(2)
    for k in range(3):
        _scene(tmp_path / f"x{k}.json", rng)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "m"),
            "--from",
            str(tiny_dir),
            "--epochs",
            "1",
        ],
    )
    assert result.exit_code == 2
    assert "at least 2 viewpoints" in result.output


def test_evaluate_missing_data_dir(tmp_path):
    result = CliRunner().invoke(
        main, ["evaluate", "--model", "demo", "--data", str(tmp_path / "none")]
    )
    assert result.exit_code == 2
    assert "is not a directory" in result.output


def _one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def _moved_images(root, image_path):
    """Two viewpoints of LabelMe files whose images live at ``image_path`` (``{name}``)."""
    rng = np.random.default_rng(4)
    for v in range(2):
        folder = root / "labels" / f"view{v}"
        folder.mkdir(parents=True)
        for k in range(2):
            json_path = folder / f"img{k}.json"
            _scene(json_path, rng)
            target = (folder / image_path.format(name=f"v{v}_{k}.png")).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            json_path.with_suffix(".png").rename(target)
            doc = json.loads(json_path.read_text())
            doc["imagePath"] = image_path.format(name=f"v{v}_{k}.png")
            json_path.write_text(json.dumps(doc))
    return root / "labels"


@pytest.mark.parametrize("image_path", ["images/{name}", "../../images/{name}"])
def test_evaluate_reads_image_paths_relative_to_the_json(tiny_dir, tmp_path, image_path):
    data = _moved_images(tmp_path, image_path)
    ev = tmp_path / "ev"
    args = ["evaluate", "--model", str(tiny_dir), "--data", str(data), "--out", str(ev)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads((ev / "metrics.json").read_text())["n_images"] == 4
    next(tmp_path.rglob("v0_0.png")).unlink()
    line = _one_error_line(CliRunner().invoke(main, args))
    assert line.startswith("error: 1 of 4 LabelMe file(s) under") and "relative to the JSON" in line
    train = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--from", str(tiny_dir)]
    assert "1 of 4 LabelMe file(s)" in _one_error_line(CliRunner().invoke(main, train))
    assert not (tmp_path / "m").exists()


def test_device_this_machine_lacks_fails_before_any_work(labelled, tiny_dir, tmp_path):
    import torch

    absent = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    ev, model = tmp_path / "ev", tmp_path / "m"
    runs = {
        absent: ["evaluate", "--model", str(tiny_dir), "--data", str(labelled), "--out", str(ev)],
        "gpu": ["train", "--data", str(labelled), "--out", str(model), "--from", str(tiny_dir)],
    }
    for device, args in runs.items():
        line = _one_error_line(CliRunner().invoke(main, [*args, "--device", device]))
        assert line.startswith(f"error: --device {device if device == absent else repr(device)}")
    assert not ev.exists() and not model.exists()


def test_out_that_is_a_file_fails_before_any_work(labelled, tiny_dir, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    for args in (
        ["evaluate", "--model", str(tiny_dir), "--data", str(labelled), "--out", str(taken)],
        ["train", "--data", str(labelled), "--out", str(taken), "--from", str(tiny_dir)],
    ):
        line = _one_error_line(CliRunner().invoke(main, args))
        assert f"Invalid value for '--out': Directory '{taken}' is a file" in line
        assert taken.read_text() == "keep me"
    below = taken / "sub"
    args = ["evaluate", "--model", str(tiny_dir), "--data", str(labelled), "--out", str(below)]
    line = _one_error_line(CliRunner().invoke(main, args))
    assert line.startswith(f"error: --out {below}: cannot create this folder")
    assert "evaluate:" not in CliRunner().invoke(main, args).stderr  # no progress: no work ran


def test_train_from_demo_keeps_the_demo_marking(labelled, tiny_dir, trained, tmp_path, monkeypatch):
    import plumenet.model.weights as weights_mod

    demo = tmp_path / "demo"
    save_model(load_model(str(tiny_dir)).model, demo, model_id="demo", metadata={"demo": True})
    monkeypatch.setattr(weights_mod, "DEMO_MODEL_DIR", demo)
    out = tmp_path / "from-demo"
    args = ["train", "--data", str(labelled), "--out", str(out), "--epochs", "1", "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "stays marked as a demo model" in result.output
    assert json.loads((out / "config.json").read_text())["metadata"]["demo"] is True
    assert load_model(str(out)).is_demo
    image = next(labelled.rglob("*.png"))
    result = CliRunner().invoke(
        main, ["predict", str(image), "--model", str(out), "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "p" / f"{image.stem}.json").read_text())
    assert doc["demo_model"] is True and "demo model" in doc["note"]
    assert not load_model(str(trained[0])).is_demo  # trained from real (non-demo) weights


def test_evaluate_mask_folder_reports_unmasked_images_and_rejects_unlabelled(tiny_dir, tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a", "b", "c"):
        _scene(tmp_path / f"{name}.json", rng)
        (tmp_path / f"{name}.json").unlink()
    Image.fromarray(np.ones((H, W), np.uint8)).save(tmp_path / "a_mask.png")
    args = [
        "evaluate",
        "--model",
        str(tiny_dir),
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "ev"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert f"warning: 2 image(s) under {tmp_path} have no NAME_mask.png" in warnings[0]
    assert f"(e.g. {tmp_path / 'b.png'})" in warnings[0]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n_images"] == 1
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(tmp_path / "a_mask.png")
    line = _one_error_line(CliRunner().invoke(main, args))
    assert "mask(s) hold no labelled pixels" in line
