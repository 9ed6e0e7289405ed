"""`plumenet catalogue` and `plumenet compare` on a small real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from click.testing import CliRunner

from plumenet.cli import main
from plumenet.science import activity
from tests.science.test_activity import synthetic_camera

CAMERA = "TST.01"


def _make_store(tmp_path: Path, rng: np.random.Generator, days: int = 6) -> tuple[Path, xr.Dataset]:
    """A store written with storage.store (the real schema) holding a synthetic camera."""
    from plumenet.config import load_config
    from storage import store

    cfg_path = tmp_path / "cameras.yaml"
    camera = {
        "id": CAMERA,
        "archive": str(tmp_path / "archive"),
        "template": "{year}/{year}.{doy}.{HH}{MM}.jpg",
        "cadence": "10min",
        "grid_start": "2024-02-28",
    }
    cfg_path.write_text(yaml.safe_dump({"store": str(tmp_path / "p.zarr"), "cameras": [camera]}))
    cfg = load_config(cfg_path)
    ds, _ = synthetic_camera(rng, days=days, n_episodes=8, camera=CAMERA)
    grid = store.ensure_camera(
        cfg.store, cfg.camera(CAMERA), "2024-02-28", "2024-03-10", grid_shape=(2, 2)
    )
    slots = grid.slot_of(pd.DatetimeIndex(ds["time"].values).tz_localize("UTC"))
    for unit in sorted({grid.unit_of_slot(int(k)) for k in slots}):
        s0, s1 = grid.unit_range(unit)
        arrays = store.unit_arrays(s1 - s0, (2, 2))
        sel = (slots >= s0) & (slots < s1)
        rows = slots[sel] - s0
        for name in ("fraction", "status", "brightness"):
            arrays[name][rows] = ds[name].values[sel]
        arrays["model"][rows] = 0
        store.write_unit(cfg.store, CAMERA, s0, s1, arrays)
    store.consolidate(cfg.store)
    return cfg_path, ds


def test_catalogue_command_writes_tables_store_and_figure(tmp_path, rng):
    from storage import store

    cfg_path, ds = _make_store(tmp_path, rng)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["catalogue", "--config", str(cfg_path), "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    cam_dir = out / CAMERA
    for name in ("episodes", "activity_1h", "activity_1d"):
        assert (cam_dir / f"{name}.parquet").is_file()
        assert (cam_dir / f"{name}.csv").is_file()
    assert (cam_dir / "timeline.png").stat().st_size > 10_000
    episodes = pd.read_parquet(cam_dir / "episodes.parquet")
    assert list(episodes.columns) == list(activity.EPISODE_COLUMNS)
    expected = activity.find_episodes(ds, camera=CAMERA)
    pd.testing.assert_frame_equal(episodes, expected, check_dtype=False)
    csv = pd.read_csv(cam_dir / "episodes.csv")
    assert len(csv) == len(episodes)
    # The store's activity subgroup, readable as a DataTree (names do not clash with parents).
    tree = store.open_tree(str(tmp_path / "p.zarr"))
    act = tree[f"{CAMERA}/activity"].to_dataset(inherit=False)
    assert act.sizes["episode"] == len(episodes)
    assert act["episode_class"].values.tolist() == episodes["class"].tolist()
    daily = tree[f"{CAMERA}/activity/activity_1d"].to_dataset(inherit=False)
    assert daily.sizes["time_1d"] == 6
    assert daily["observable_frames"].values.sum() == activity.observability(ds).values.sum()


def test_compare_command_recovers_lag(tmp_path, rng):
    cfg_path, ds = _make_store(tmp_path, rng, days=6)
    obs = activity.observability(ds).values
    frac = activity.activity_fractions(ds, obs)["any_emission"]
    # RSAM that leads the emissions by 2 h: shift the (filled) activity back in time.
    lead = pd.Timedelta("2h")
    driver = frac.fillna(0.0).rolling(6, min_periods=1).mean()
    rsam = pd.Series(
        np.exp(8 * driver.to_numpy()) + 0.05 * rng.random(driver.size), index=driver.index - lead
    )
    rsam_csv = tmp_path / "rsam.csv"
    pd.DataFrame({"time": rsam.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": rsam.values}).to_csv(
        rsam_csv, index=False
    )
    episodes = activity.find_episodes(ds, classes=["any_emission"])
    events_csv = tmp_path / "events.csv"
    ev_times = (episodes["onset"] - pd.Timedelta("90min")).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    pd.DataFrame({"time": ev_times, "magnitude": 1.0}).to_csv(events_csv, index=False)
    out = tmp_path / "cmp"
    args = ["compare", "--config", str(cfg_path), "--camera", CAMERA, "--rsam", str(rsam_csv)]
    args += ["--events", str(events_csv), "--out", str(out), "--max-lag", "12h"]
    args += ["--window", "2h", "--lag", "0h", "--surrogates", "99"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "comparison.json").read_text())
    assert abs(report["xcorr"]["best_lag_s"] - 7200) <= 3600
    assert report["xcorr"]["p_value"] <= 0.05
    row = report["coincidence"][0]
    assert row["window_s"] == 7200 and row["lag_s"] == 0
    assert row["precursor_rate"] >= 0.9
    for name in ("xcorr.csv", "coincidence.csv", "epoch.csv", "xcorr.png", "epoch.png"):
        assert (out / name).is_file()


def test_cli_errors_are_one_line_exit_2(tmp_path, rng):
    cfg_path, _ = _make_store(tmp_path, rng, days=1)
    bad = tmp_path / "rsam.csv"
    bad.write_text("time,value\n2024-03-01T00:00:00Z,1\n2024-03-01T00:10:00Z,x\n")
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["compare", "--config", str(cfg_path), "--camera", CAMERA, "--rsam", str(bad)],
    )
    assert result.exit_code == 2
    assert "rsam.csv: line 3, field 'value'" in result.output
    result = runner.invoke(main, ["catalogue", "--config", str(cfg_path), "--on", "0.02,lava=x"])
    assert result.exit_code == 2
    assert "is not a threshold" in result.output
    result = runner.invoke(
        main,
        ["catalogue", "--config", str(cfg_path), "--on", "lava=0.001", "--off", "lava=0.002"],
    )
    assert result.exit_code == 2
    assert "on threshold 0.001 is below off threshold 0.002 for lava" in result.output
    out = tmp_path / "out"
    args = ["catalogue", "--config", str(cfg_path), "--on", "lava=0.001", "--no-store"]
    result = runner.invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output  # lava's off defaults to half its on
    result = runner.invoke(main, ["catalogue", "--config", str(cfg_path), "--camera", "NOPE"])
    assert result.exit_code == 2
    assert "no camera 'NOPE'" in result.output
    result = runner.invoke(
        main, ["catalogue", "--config", str(cfg_path), "--on", "0.01", "--off", "0.05"]
    )
    assert result.exit_code == 2
    assert "on threshold 0.01 is below off threshold 0.05" in result.output


def test_catalogue_without_episodes_still_writes(tmp_path, rng):
    """A quiet camera gives empty tables, not an error."""
    from plumenet.science.activity import run_catalogue

    cfg_path, _ = _make_store(tmp_path, rng, days=1)
    paths = run_catalogue(cfg_path, out=tmp_path / "out", on=0.99, off=0.98, figures=False)
    episodes = pd.read_parquet(paths[CAMERA]["episodes_parquet"])
    assert episodes.empty
    assert list(episodes.columns) == list(activity.EPISODE_COLUMNS)
    with pytest.raises(ValueError, match=r"unknown catalogue parameter\(s\) \['bogus'\]"):
        run_catalogue(cfg_path, out=tmp_path / "out", bogus=1)
