"""Catalogue throughput: observability + episodes + hourly/daily activity for 10 camera-years.

525,600 frames at 10-min cadence, built in memory in the store schema (fractions with
day/night, clouds, ~3,000 episodes and noise). Target: < 10 s for the catalogue.

    python -m benchmarks.catalogue [--years 10] [--repeat 3] [--compare]

``--compare`` also times the seismic comparison on the hourly activity (499 surrogates,
+-72 h) and event coincidence (9 window/lag pairs, 999 shuffles).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.classes import EMISSION_CLASSES, MODEL_CLASSES
from plumenet.science import activity, compare


def build(years: float, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    n = int(years * 52_560)
    time_ = pd.date_range("2015-01-01", periods=n, freq="10min")
    hour = (time_.hour + time_.minute / 60).to_numpy()
    night = (hour < 6) | (hour >= 18)
    emis = rng.uniform(0, 0.004, (n, len(EMISSION_CLASSES)))
    n_ep = int(300 * years)
    starts = rng.integers(0, n - 50, n_ep)
    lengths = rng.integers(3, 40, n_ep)
    cls = rng.integers(0, len(EMISSION_CLASSES), n_ep)
    for s, L, c in zip(starts, lengths, cls, strict=True):
        emis[s : s + L, c] = rng.uniform(0.05, 0.3)
    land = 0.3 + rng.normal(0, 0.01, n)
    cloud = rng.random(n) < 0.05
    land[cloud] = 0.02
    emis[cloud] = 0
    frac = np.empty((n, 6), np.float32)
    frac[:, 1] = land
    frac[:, 2:] = emis
    frac[:, 0] = 1 - frac[:, 1:].sum(axis=1)
    status = np.ones(n, np.uint8)
    status[rng.random(n) < 0.01] = 0
    frac[status == 0] = np.nan
    bright = np.where(night, 0.03, 0.6).astype(np.float32)
    return xr.Dataset(
        {
            "fraction": (("time", "class"), frac),
            "status": ("time", status),
            "brightness": ("time", bright),
        },
        coords={"time": time_.values, "class": list(MODEL_CLASSES)},
        attrs={"cadence": "10min", "camera_id": "BENCH.01"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    ds = build(args.years)
    n = ds.sizes["time"]
    print(f"frames: {n:,} ({args.years:g} camera-years at 10 min)")
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = activity.catalogue(ds, camera="BENCH.01")
        times.append(time.perf_counter() - t0)
    eps = res["episodes"]
    best = min(times)
    print(
        f"catalogue (observability + episodes x5 classes + 1h + 1D bins): "
        f"best {best:.2f} s, median {np.median(times):.2f} s over {args.repeat} "
        f"({n / best:,.0f} frames/s); {len(eps):,} episodes, "
        f"{res['activity_1h'].sizes['time']:,} hourly bins  [target < 10 s]"
    )
    if args.compare:
        act = res["activity_1h"]
        idx = pd.DatetimeIndex(act["time"].values)
        rng = np.random.default_rng(1)
        rsam = pd.Series(np.exp(rng.standard_normal(n)), index=pd.DatetimeIndex(ds["time"].values))
        onsets = eps.loc[eps["class"] == "any_emission", ["class", "onset"]]
        events = pd.DataFrame({"time": idx[rng.integers(0, idx.size, 2000)].tz_localize("UTC")})
        t0 = time.perf_counter()
        out = compare.compare(act, rsam, events, onsets)
        dt = time.perf_counter() - t0
        print(
            f"compare (xcorr 499 surrogates +-72 h on {idx.size:,} hourly bins, ECA 9 pairs x "
            f"999 shuffles, epochs of {len(onsets):,} onsets): {dt:.2f} s; "
            f"p = {out['xcorr']['p_value']}"
        )


if __name__ == "__main__":
    main()
