"""End to end: the anomaly CLI (fit, score, evaluate) and scores on a fixed synthetic camera."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plumenet.anomaly.evaluation import auroc
from plumenet.anomaly.files import load_padim
from plumenet.anomaly.fit import fit_padim
from plumenet.anomaly.scorer import AnomalyScorer

#: Emissions drawn for the "active" test frames (one kind per frame, in turn). Translucent
#: gas plumes are left out: in these scenes they look like the baseline's clouds and
#: PaDiM separates them poorly (AUROC about 0.6, see docs/anomaly.md).
ACTIVE = ("eruption_column", "ash_emissions", "lava")


def _write_camera(root: Path, tiny) -> Path:
    """A flat archive of one quiet day and one day with emissions, a config and a truth CSV."""
    import pandas as pd
    import yaml
    from PIL import Image

    from plumenet.classes import EMISSION_CLASSES, MODEL_CLASSES, merge_labels
    from plumenet.model.weights import save_model
    from plumenet.synthetic.render import render_scene
    from plumenet.synthetic.spec import random_scene_spec

    save_model(tiny, root / "model", model_id="tiny-test")
    (root / "archive").mkdir()
    rows = []
    times = list(pd.date_range("2024-01-01", periods=12, freq="1h", tz="UTC"))
    times += list(pd.date_range("2024-01-02", periods=8, freq="1h", tz="UTC"))
    for i, t in enumerate(times):
        active = t.day == 2 and i % 2 == 0
        rng = np.random.default_rng([5, i])
        spec = random_scene_spec(
            rng,
            size=(112, 112),
            view_seed=3,
            night=False,
            activity=["eruption_column", "ash_emissions"] if active else [],
        )
        rgb, label = render_scene(spec)
        Image.fromarray(rgb).save(root / "archive" / f"TST_{t:%Y%m%d_%H%M%S}.png")
        merged = merge_labels(label)
        row = {"time": t.isoformat()}
        for name in EMISSION_CLASSES:
            row[name] = float((merged == MODEL_CLASSES.index(name)).mean())
        rows.append(row)
    (root / "archive" / "TST_20240102_230000.png").write_bytes(b"not an image")
    pd.DataFrame(rows).to_csv(root / "truth.csv", index=False)
    config = {
        "store": "store.zarr",
        "model": "model",
        "cameras": [
            {
                "id": "TST",
                "archive": "archive",
                "template": "TST_{year}{month}{day}_{HH}{MM}{SS}.png",
                "cadence": "10min",
                "grid_start": "2024-01-01",
                "anomaly_model": "padim",
            }
        ],
    }
    (root / "cameras.yaml").write_text(yaml.safe_dump(config))
    return root / "cameras.yaml"


def test_fit_help_lists_the_score_options():
    from click.testing import CliRunner

    from plumenet.cli import main

    result = CliRunner().invoke(main, ["anomaly", "fit", "--help"])
    assert result.exit_code == 0
    for option in ("--distance [mahalanobis|nlml]", "--image-score [blur|max]", "--blur-sigma"):
        assert option in result.output
    assert "--layer-weights" in result.output and "depth" in result.output


def test_cli_fit_score_evaluate(tiny, tmp_path: Path):
    from click.testing import CliRunner

    from plumenet.cli import main

    config = str(_write_camera(tmp_path, tiny))
    runner = CliRunner()
    base = ["--config", config, "--camera", "TST"]
    result = runner.invoke(
        main,
        [
            "anomaly",
            "evaluate",
            *base,
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-02",
            "--truth",
            str(tmp_path / "truth.csv"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "padim.json and padim.safetensors" in result.output
    result = runner.invoke(
        main,
        [
            "anomaly",
            "fit",
            *base,
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
            "--channels",
            "16",
            "--layers",
            "1,-1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "fitted on 12 frames (layers 1,2, 16 channels, concat, mahalanobis, image score blur)"
        in result.output
    )
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: camera 'TST': the baseline has 12 frames for 16 channels per Gaussian, so each "
        "patch covariance has rank at most 11 and is mostly the eps=0.01 regularisation: scores "
        "will not be meaningful; fit on more than 16 frames (several times more is better: "
        "widen --start/--end or raise --max-frames) or pass --channels below 12"
    ]
    padim = load_padim(tmp_path / "padim")
    assert padim.backbone_info["model_id"] == "tiny-test"
    assert (padim.distance, padim.reduction, padim.sigma) == ("mahalanobis", "blur", 4.0)
    fit_base = [*base, "--start", "2024-01-01", "--end", "2024-01-01", "--channels", "16"]
    result = runner.invoke(
        main,
        [
            "anomaly",
            "fit",
            *fit_base,
            "--out",
            str(tmp_path / "wnlml"),
            "--mode",
            "weighted",
            "--distance",
            "nlml",
            "--image-score",
            "max",
            "--layer-weights",
            "1,3",
            "--blur-sigma",
            "2.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "weighted, nlml, image score max, layer weights 0.250,0.750)" in result.output
    assert "warning:" not in result.stderr  # 12 frames for 8 channels per layer's Gaussian
    wnlml = load_padim(tmp_path / "wnlml")
    assert (wnlml.mode, wnlml.distance, wnlml.reduction) == ("weighted", "nlml", "max")
    assert wnlml.weights.tolist() == [0.25, 0.75] and wnlml.sigma == 2.5
    result = runner.invoke(
        main,
        ["anomaly", "fit", *fit_base, "--out", str(tmp_path / "bad"), "--layer-weights", "depth"],
    )
    assert result.exit_code == 2
    assert "layer weights combine one Gaussian per layer: add --mode weighted" in result.output
    result = runner.invoke(
        main,
        [
            "anomaly",
            "fit",
            *fit_base,
            "--out",
            str(tmp_path / "bad"),
            "--mode",
            "weighted",
            "--layer-weights",
            "1,2,3",
        ],
    )
    assert result.exit_code == 2
    assert "cannot fit the anomaly model: 3 layer weights given for 2 layers" in result.output
    assert not (tmp_path / "bad").exists()

    scores_csv = tmp_path / "scores.csv"
    result = runner.invoke(
        main,
        [
            "anomaly",
            "evaluate",
            *base,
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-02",
            "--truth",
            str(tmp_path / "truth.csv"),
            "--scores",
            str(scores_csv),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "TST: 9 frames, 8 scored and labelled (4 anomalous, 4 normal)" in result.output
    assert "skipped 1 unreadable frame(s)" in result.output
    assert "AUROC " in result.output
    import pandas as pd

    table = pd.read_csv(scores_csv)
    assert list(table.columns) == ["time", "path", "size", "score", "label"]
    image = str(tmp_path / "archive" / "TST_20240102_000000.png")
    result = runner.invoke(main, ["anomaly", "score", "--model", str(tmp_path / "padim"), image])
    assert result.exit_code == 0, result.output
    expected = float(table.loc[table["path"] == image, "score"].iloc[0])
    assert result.output.startswith(f"{image}\t{expected:.4f}")


def _camera_frames(seed: int, n: int, size: int, active: bool) -> np.ndarray:
    """Daytime frames of one fixed view (``view_seed`` 7): clouds, haze and light vary."""
    from plumenet.synthetic.render import render_scene
    from plumenet.synthetic.spec import random_scene_spec

    frames = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        activity = [ACTIVE[i % len(ACTIVE)]] if active else []
        spec = random_scene_spec(
            rng, size=(size, size), view_seed=7, activity=activity, night=False
        )
        frames[i] = render_scene(spec)[0]
    return frames


@pytest.mark.slow
def test_emissions_score_above_quiet_frames_on_a_fixed_camera():
    """Fit on 120 quiet frames of one view; 24 frames with emissions vs 24 without."""
    from plumenet.model.weights import load_model

    loaded = load_model("demo", device="cpu")
    size = loaded.input_size
    baseline = _camera_frames(101, 120, size, active=False)
    padim = fit_padim(loaded, np.array_split(baseline, 8), seed=0)
    assert padim.backbone_info["model_id"] == loaded.model_id
    scorer = AnomalyScorer(padim, loaded)
    active = scorer.score_frames(_camera_frames(102, 24, size, active=True))
    quiet = scorer.score_frames(_camera_frames(103, 24, size, active=False))
    value = auroc(np.r_[active, quiet], np.r_[np.ones(24), np.zeros(24)])
    assert value >= 0.9, f"AUROC {value:.3f}"


def test_cli_rejects_bad_numbers_and_missing_devices_before_any_work(tmp_path: Path):
    import torch
    from click.testing import CliRunner

    from plumenet.cli import main

    runner = CliRunner()
    fit = ["anomaly", "fit", "--config", str(tmp_path / "none.yaml"), "--camera", "X"]
    fit += ["--start", "2024-01-01", "--end", "2024-01-01"]
    for option, value in (("--max-frames", "-1"), ("--channels", "0"), ("--batch-size", "0")):
        result = runner.invoke(main, [*fit, option, value])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith("error: ") and "anomaly fit: Invalid value for" in lines[0]
        assert f"'{option}'" in lines[0]
    if torch.cuda.is_available():
        return
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    for args in (fit, ["anomaly", "score", "--model", str(tmp_path), str(image)]):
        result = runner.invoke(main, [*args, "--device", "cuda"])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith("error: --device cuda: this machine has no CUDA device")
