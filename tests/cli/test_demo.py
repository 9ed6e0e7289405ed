"""`plumenet demo` end to end, as a user runs it: synthetic archive -> backfill (temporary
Prefect server, local Dask cluster, bundled demo model) -> catalogue -> comparison.

Its outputs are then checked against the synthetic ground truth: frames and statuses in the
store, episodes recalled, the injected seismic lead recovered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from storage.schema import parse_json_attr

pytestmark = [pytest.mark.slow, pytest.mark.server]

CAMERAS = ("DEMO.geonet", "DEMO.avo")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "plumenet-demo"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(out.parent / "prefect-home")
    proc = subprocess.run(
        [sys.executable, "-m", "plumenet.cli", "demo", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_prints_where_everything_is(demo_run):
    out, stdout = demo_run
    assert "store:" in stdout and str(out / "plumenet.zarr") in stdout
    assert "xr.open_zarr(" in stdout
    assert "demo model" in stdout
    for cam in CAMERAS:
        assert (out / "catalogue" / cam / "timeline.png").stat().st_size > 10_000
    assert (out / "comparison" / "comparison.json").exists()


def test_demo_store_holds_every_listed_frame(demo_run):
    out, _ = demo_run
    for cam in CAMERAS:
        truth = pd.read_csv(out / "archive" / cam / "truth" / "fractions.csv")
        kind = truth["broken"].fillna("")
        ds = xr.open_zarr(out / "plumenet.zarr", group=cam)
        status = dict(zip(ds["source"].values, ds["status"].values, strict=True))
        listed = truth[kind != "misnamed"]
        assert len(listed) > 300
        for url, k in zip(listed["url"], kind[kind != "misnamed"], strict=True):
            assert status[url] == (2 if k else 1), (url, k, status.get(url))
        ok = ds["status"].values == 1
        np.testing.assert_allclose(ds["fraction"].values[ok].sum(axis=1), 1, atol=1e-5)
        assert isinstance(ds.attrs["models"], str)  # JSON text: netCDF-safe (docs/store.md)
        assert parse_json_attr(ds.attrs["models"])[0]["id"]
    tree = xr.open_datatree(out / "plumenet.zarr", engine="zarr")
    assert {f"/{c}/activity" for c in CAMERAS} <= set(tree.groups)


def _observable_truth_episodes(cam_dir: Path) -> pd.DataFrame:
    """True episodes that a camera could see: some frame in them is daylit and unobstructed.

    An episode entirely at night or behind cloud is "could not see", not "missed".
    """
    episodes = pd.read_csv(cam_dir / "truth" / "episodes.csv", parse_dates=["onset", "end"])
    frames = pd.read_csv(cam_dir / "truth" / "fractions.csv", parse_dates=["time"])
    visible = frames[(~frames["night"].astype(bool)) & (~frames["obstructed"].astype(bool))]
    keep = [
        ((visible["time"] >= row.onset) & (visible["time"] <= row.end)).any()
        for row in episodes.itertuples()
    ]
    return episodes[keep]


def test_demo_recalls_visible_episodes(demo_run):
    out, _ = demo_run
    hits = total = 0
    for cam in CAMERAS:
        truth = _observable_truth_episodes(out / "archive" / cam)
        found = pd.read_csv(out / "catalogue" / cam / "episodes.csv", parse_dates=["onset", "end"])
        found = found[found["class"] == "any_emission"]
        on = found["onset"].dt.tz_localize(None)
        end = found["end"].dt.tz_localize(None)
        for row in truth.itertuples():
            hits += bool(((on <= row.end) & (end >= row.onset)).any())
            total += 1
    assert total >= 5
    assert hits / total >= 0.8, f"recalled {hits} of {total} visible episodes"


def test_demo_recovers_the_injected_seismic_lead(demo_run):
    out, _ = demo_run
    truth = json.loads((out / "archive" / CAMERAS[0] / "truth" / "truth.json").read_text())
    result = json.loads((out / "comparison" / "comparison.json").read_text())
    xcorr = result["xcorr"]
    assert abs(xcorr["best_lag_s"] - truth["rsam_lag_s"]) <= xcorr["bin_s"]
    assert xcorr["p_value"] < 0.05
