"""`plumenet catalogue` and `plumenet compare` on a small real store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from plumenet.cli import main
from plumenet.science import episodes as episodes_mod
from plumenet.science import observability
from tests.helpers.catalogue import CAMERA, make_store


def test_catalogue_command_writes_tables_store_and_figure(tmp_path, rng):
    from storage.reads import open_tree

    cfg_path, ds = make_store(tmp_path, rng)
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
    assert list(episodes.columns) == list(episodes_mod.EPISODE_COLUMNS)
    expected = episodes_mod.find_episodes(ds, camera=CAMERA)
    pd.testing.assert_frame_equal(episodes, expected, check_dtype=False)
    csv = pd.read_csv(cam_dir / "episodes.csv")
    assert len(csv) == len(episodes)
    # The store's activity subgroup, readable as a DataTree (names do not clash with parents).
    tree = open_tree(str(tmp_path / "p.zarr"))
    act = tree[f"{CAMERA}/activity"].to_dataset(inherit=False)
    assert act.sizes["episode"] == len(episodes)
    assert act["episode_class"].values.tolist() == episodes["class"].tolist()
    daily = tree[f"{CAMERA}/activity/activity_1d"].to_dataset(inherit=False)
    assert daily.sizes["time_1d"] == 6
    assert daily["observable_frames"].values.sum() == observability.observability(ds).values.sum()


def test_compare_command_recovers_lag(tmp_path, rng):
    cfg_path, ds = make_store(tmp_path, rng, days=6)
    obs = observability.observability(ds).values
    frac = observability.activity_fractions(ds, obs)["any_emission"]
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
    episodes = episodes_mod.find_episodes(ds, classes=["any_emission"])
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
    # Six days: too short for the rotation by default; asked for, it has 5 surrogates.
    assert report["settings"]["eca_null_requested"] == "auto"
    assert report["settings"]["eca_null"].startswith("day shift")
    assert "(999 day shift surrogates)" in " ".join(result.output.split())
    args = [*args, "--eca-null", "rotation", "--out", str(tmp_path / "rot")]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rot" / "comparison.json").read_text())
    assert report["settings"]["eca_null"].startswith("rotation")
    assert report["settings"]["eca_surrogates"] == 5
    assert report["coincidence"][0]["precursor_p_shuffle"] >= 1 / 6


def test_cli_errors_are_one_line_exit_2(tmp_path, rng):
    cfg_path, _ = make_store(tmp_path, rng, days=1)
    bad = tmp_path / "rsam.csv"
    bad.write_text("time,value\n2024-03-01T00:00:00Z,1\n2024-03-01T00:10:00Z,x\n")
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["compare", "--config", str(cfg_path), "--camera", CAMERA, "--rsam", str(bad)],
    )
    assert result.exit_code == 2
    assert "rsam.csv: line 3, field 'value'" in result.output
    events = tmp_path / "events.csv"
    events.write_text("time\n2024-03-01T06:00:00Z\n")
    args = ["compare", "--config", str(cfg_path), "--camera", CAMERA, "--events", str(events)]
    result = runner.invoke(main, [*args, "--eca-null", "rotation", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "turning events round it needs at least 2" in result.output
    assert not (tmp_path / "c" / "comparison.json").exists()
    for extra, message in (
        (["--window=-1h"], "--window '-1h' must be longer than zero"),
        (["--lag", "abc"], "--lag 'abc' is not a duration"),
        (["--max-lag", "12"], "--max-lag '12' has no unit"),
    ):
        result = runner.invoke(main, [*args, *extra, "--out", str(tmp_path / "c")])
        assert result.exit_code == 2 and message in result.output, result.output
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = runner.invoke(main, [*args, "--out", str(blocked / "cmp")])
    assert result.exit_code == 2 and "cannot create this folder" in result.output
    result = runner.invoke(main, ["catalogue", "--config", str(cfg_path), "--min-duration", "10"])
    assert result.exit_code == 2
    assert "--min-duration '10' has no unit" in " ".join(result.output.split())
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


def _write_mseed(path, ds, rng, lead: pd.Timedelta) -> None:
    """Two channels at 10 Hz; the HHZ amplitude follows the emissions, ``lead`` earlier."""
    from obspy import Stream, Trace, UTCDateTime

    obs = observability.observability(ds).values
    frac = observability.activity_fractions(ds, obs)["any_emission"]
    driver = frac.fillna(0.0).rolling(5, min_periods=1, center=True).mean()
    fs = 10.0
    t0 = pd.Timestamp(ds["time"].values[0])
    n = int((pd.Timestamp(ds["time"].values[-1]) - t0).total_seconds() * fs)
    seconds = np.arange(n) / fs
    frame_s = (driver.index - t0).total_seconds().to_numpy() - lead.total_seconds()
    envelope = 1.0 + 40.0 * np.interp(seconds, frame_s, driver.to_numpy())
    traces = []
    for cha, env in (("HHZ", envelope), ("HHE", np.ones(n))):
        data = (env * rng.standard_normal(n)).astype(np.float32)
        stats = {"network": "XX", "station": "VOL", "channel": cha, "sampling_rate": fs,
                 "starttime": UTCDateTime(t0.isoformat() + "Z")}  # fmt: skip
        traces.append(Trace(data=data, header=stats))
    Stream(traces).write(str(path), format="MSEED", encoding="FLOAT32")


def test_compare_command_freq_and_miniseed_options(tmp_path, rng):
    cfg_path, ds = make_store(tmp_path, rng, days=3)
    mseed = tmp_path / "wave.mseed"
    _write_mseed(mseed, ds, rng, pd.Timedelta("30min"))
    out = tmp_path / "cmp"
    args = ["compare", "--config", str(cfg_path), "--camera", CAMERA, "--rsam", str(mseed)]
    args += ["--out", str(out), "--max-lag", "6h", "--surrogates", "49", "--freq", "10min"]
    runner = CliRunner()
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "holds 2 channels (XX.VOL..HHE, XX.VOL..HHZ); choose one with seed_id" in result.output
    opts = ["--seed-id", "XX.VOL..HHZ", "--freqmin", "1", "--freqmax", "4"]
    opts += ["--rsam-window", "10min"]
    result = runner.invoke(main, [*args, *opts], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "comparison.json").read_text())
    assert report["activity_bins"] == "10min"
    assert report["xcorr"]["bin_s"] == 600
    assert report["rsam_options"] == {
        "seed_id": "XX.VOL..HHZ", "freqmin": 1.0, "freqmax": 4.0, "window": "10min"
    }  # fmt: skip
    assert abs(report["xcorr"]["best_lag_s"] - 1800) <= 600, report["xcorr"]
    assert report["xcorr"]["p_value"] <= 0.05
    assert "detrend" in report["xcorr"]["preprocessing"]
    assert "(positive: seismic leads)" in result.output and "±" in result.output
    assert "daily cycle removed:" in result.output
    n, method = report["xcorr"]["n_surrogates"], report["xcorr"]["preprocessing"]["surrogates"]
    said = " ".join(result.output.split())  # rich wraps long lines
    assert f"p = {report['xcorr']['p_value']:.3g} ({n} {method} surrogates;" in said
    csv = tmp_path / "r.csv"
    csv.write_text("time,value\n2024-03-01T00:00:00Z,1\n")
    bad = ["compare", "--config", str(cfg_path), "--camera", CAMERA, "--rsam", str(csv)]
    result = runner.invoke(main, [*bad, "--seed-id", "XX.VOL..HHZ"])
    assert result.exit_code == 2
    assert "miniSEED options ['seed_id'] apply only to miniSEED input" in result.output
    result = runner.invoke(main, [*bad, "--freq", "often"])
    assert result.exit_code == 2
    assert "--freq 'often' is not a duration" in result.output


def test_catalogue_command_max_blind_and_baseline(tmp_path, rng):
    cfg_path, ds = make_store(tmp_path, rng, days=3)
    out = tmp_path / "out"
    args = ["catalogue", "--config", str(cfg_path), "--out", str(out), "--no-store"]
    args += ["--max-blind", "none", "--baseline", "0.25", "--land-drop", "0.4"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    episodes = pd.read_parquet(out / CAMERA / "episodes.parquet")
    expected = episodes_mod.find_episodes(
        ds, camera=CAMERA, max_blind=None, baseline=0.25, land_drop=0.4
    )
    pd.testing.assert_frame_equal(episodes, expected, check_dtype=False)
    default = episodes_mod.find_episodes(ds, camera=CAMERA)
    assert len(default) >= len(expected)  # nights and long clouds now end episodes
    result = CliRunner().invoke(main, [*args[:6], "--max-blind", "5 fortnights"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_compare_command_series_height(tmp_path, rng):
    """`--series height` correlates the plume height; without metres it is one error line."""
    from plumenet.science.activity import bin_activity

    cfg_path, ds = make_store(tmp_path, rng, days=4)
    height = bin_activity(ds, "1h")["height_max_m"].sel({"class": "any_emission"}).to_series()
    lead = pd.Timedelta("1h")
    rsam = np.exp(height.fillna(0.0) / 500.0) * (1 + 0.05 * rng.random(height.size))
    rsam_csv = tmp_path / "rsam.csv"
    times = (height.index - lead).strftime("%Y-%m-%dT%H:%M:%SZ")
    pd.DataFrame({"time": times, "value": rsam.to_numpy()}).to_csv(rsam_csv, index=False)
    out = tmp_path / "cmp"
    args = ["compare", "--config", str(cfg_path), "--camera", CAMERA, "--rsam", str(rsam_csv)]
    args += ["--out", str(out), "--max-lag", "12h", "--surrogates", "99"]
    result = CliRunner().invoke(main, [*args, "--series", "height"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{CAMERA} (height): best lag" in result.output
    report = json.loads((out / "comparison.json").read_text())
    assert report["settings"]["activity"] == "height_max_m_any_emission"
    assert report["xcorr"]["best_lag_s"] == 3600
    result = CliRunner().invoke(main, [*args, "--series", "depth"])
    assert result.exit_code == 2 and "'depth' is not one of 'share', 'height'" in result.output
    no_metres = tmp_path / "px"
    no_metres.mkdir()
    cfg_px, _ = make_store(no_metres, rng, days=2, metres=False)
    args[2] = str(cfg_px)
    result = CliRunner().invoke(main, [*args, "--series", "height"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: camera 'TST.01' has no plume heights")
