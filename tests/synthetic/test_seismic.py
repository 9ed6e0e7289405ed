"""Synthetic seismic data: RSAM that leads visible activity, events clustered before onsets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plumenet.synthetic.seismic import make_events, make_rsam
from plumenet.synthetic.timeline import make_episodes


def test_rsam_leads_visible_activity_by_the_lag():
    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-06")
    eps = make_episodes(start, end, seed=8)
    rsam = make_rsam(eps, start, end, seed=8, lag=pd.Timedelta("30min"))
    times = rsam["time"]
    active = np.zeros(len(times))
    for onset, stop in zip(eps["onset"], eps["end"], strict=True):
        active += ((times >= onset) & (times < stop)).to_numpy()
    x = (rsam["value"] - rsam["value"].mean()).to_numpy()
    y = active - active.mean()
    lags = range(-12, 13)  # in 10-minute steps: corr(rsam(t), activity(t + k))
    corr = []
    for k in lags:
        a, b = (x[: len(x) - k], y[k:]) if k >= 0 else (x[-k:], y[: len(y) + k])
        corr.append(float(np.corrcoef(a, b)[0, 1]))
    assert list(lags)[int(np.argmax(corr))] == 3
    assert max(corr) > 0.6


def test_events_cluster_before_onsets():
    start, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-06")
    eps = make_episodes(start, end, seed=8)
    ev = make_events(eps, start, end, seed=8)
    assert list(ev.columns) == ["time", "magnitude"] and ev["time"].is_monotonic_increasing
    before = 0
    for onset in eps["onset"]:
        before += int(((ev["time"] >= onset - pd.Timedelta("20min")) & (ev["time"] <= onset)).sum())
    window_share = len(eps) * 20 / ((end - start) / pd.Timedelta("1min"))
    assert before / len(ev) > 5 * window_share  # far more than a uniform rate would give
    assert before >= 2 * len(eps[eps["onset"] - pd.Timedelta("20min") >= start])
