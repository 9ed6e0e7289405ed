"""The comparison job: option checks before any work, the pass-through of options, and the
height series (``series="height"``) read from a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plumenet.errors import ConfigError
from plumenet.jobs.compare import run_compare
from plumenet.science import activity
from tests.helpers.catalogue import CAMERA, make_store


def test_run_compare_checks_options_and_records_them(tmp_path, rng):
    cfg_path, ds = make_store(tmp_path, rng, days=2)
    with pytest.raises(ConfigError, match=r"unknown miniSEED option\(s\) \['band'\]"):
        run_compare(cfg_path, CAMERA, rsam=tmp_path / "x.mseed", mseed={"band": (1, 2)})
    times = pd.DatetimeIndex(ds["time"].values)
    events = pd.DataFrame({"time": times[::50].tz_localize("UTC")})
    paths = run_compare(
        cfg_path, CAMERA, events=events, out=tmp_path / "cmp", figures=False,
        n_shuffles=49, max_blind="none", windows=["2h"], lags=["0h"],
    )  # fmt: skip
    report = json.loads(Path(paths["comparison_json"]).read_text())
    assert report["xcorr"] is None
    assert len(report["coincidence"]) == 1
    row = report["coincidence"][0]
    assert {"precursor_p_family", "trigger_p_poisson_holm"} <= set(row)
    assert report["coincidence_family_p"] == pytest.approx(
        min(row["precursor_p_family"], row["trigger_p_family"])
    )
    assert report["settings"]["eca_null"].startswith("day shift")


def test_run_compare_on_height_recovers_the_lag_from_the_store(tmp_path, rng):
    cfg_path, ds = make_store(tmp_path, rng, days=6)
    hourly = activity.bin_activity(ds, "1h")
    height = hourly["height_max_m"].sel({"class": "any_emission"}).to_series().fillna(0.0)
    lead = pd.Timedelta("2h")  # RSAM rises with the plume 2 h before it: seismic leads
    fine = height.resample("10min").ffill()
    rsam = pd.Series(
        np.exp(fine.to_numpy() / 500.0) * (1 + 0.05 * rng.random(fine.size)),
        index=(fine.index - lead).tz_localize("UTC"),
    )
    paths = run_compare(
        cfg_path, CAMERA, rsam=rsam, out=tmp_path / "cmp", figures=True, series="height",
        n_surrogates=99, max_lag="12h",
    )  # fmt: skip
    report = json.loads(Path(paths["comparison_json"]).read_text())
    assert report["settings"]["series"] == "height"
    assert report["settings"]["activity"] == "height_max_m_any_emission"
    assert report["xcorr"]["best_lag_s"] == lead.total_seconds()
    assert report["xcorr"]["p_value"] <= 0.05
    assert Path(paths["timeline_png"]).stat().st_size > 10_000


def test_run_compare_on_height_needs_metres(tmp_path, rng):
    cfg_path, _ = make_store(tmp_path, rng, days=2, metres=False)
    rsam = pd.Series([1.0, 2.0], index=pd.to_datetime(["2024-03-01", "2024-03-02"], utc=True))
    with pytest.raises(ConfigError, match=r"has no plume heights in metres .* --series share"):
        run_compare(cfg_path, CAMERA, rsam=rsam, out=tmp_path / "cmp", series="height")
    with pytest.raises(ConfigError, match=r"unknown series 'depth'.*\(--series\)"):
        run_compare(cfg_path, CAMERA, rsam=rsam, out=tmp_path / "cmp", series="depth")
    with pytest.raises(ConfigError, match=r"class 'lava' has no plume height"):
        run_compare(cfg_path, CAMERA, rsam=rsam, out=tmp_path / "cmp", series="height", cls="lava")
