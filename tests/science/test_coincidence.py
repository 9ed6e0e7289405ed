"""Event coincidence (rates, Poisson and shuffle p-values) and superposed epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plumenet.science import coincidence, eca_null


def _brute_force(a, b, window, lag, start, end):
    a_ok = [t for t in a if t - lag - window >= start and t <= end]
    b_ok = [t for t in b if t >= start and t + lag + window <= end]
    kp = sum(any(ta - lag - window <= tb <= ta - lag for tb in b) for ta in a_ok)
    kt = sum(any(tb + lag <= ta <= tb + lag + window for ta in a) for tb in b_ok)
    return len(a_ok), len(b_ok), kp, kt


@pytest.mark.parametrize(("window", "lag"), [(2.0, 0.0), (3.0, 1.0), (1.0, 4.0), (10.0, 2.5)])
def test_coincidence_rates_equal_brute_force(window, lag):
    a = [3.0, 7.5, 12.0, 20.0, 21.0, 33.0, 41.5]
    b = [1.0, 2.0, 6.0, 11.0, 17.5, 19.0, 30.0, 40.0, 44.0]
    out = coincidence.coincidence_rates(
        np.array(a), np.array(b), window=window, lag=lag, start=0.0, end=45.0
    )
    n_a, n_b, kp, kt = _brute_force(a, b, window, lag, 0.0, 45.0)
    assert (out["n_a"], out["n_b"], out["k_precursor"], out["k_trigger"]) == (n_a, n_b, kp, kt)
    assert out["precursor_rate"] == pytest.approx(kp / n_a)
    assert out["trigger_rate"] == pytest.approx(kt / n_b)


def test_analytic_p_value_uses_total_counts_in_the_formula():
    """Donges et al. (2016): the hit probability of a window uses every event of the
    other series in the stretch the windows can cover, not only the edge-filtered ones."""
    from math import comb

    w, lag, start, end = 2.0, 1.0, 0.0, 100.0
    a = np.array([4.0, 10.0, 22.0, 35.0, 50.0, 61.0, 77.0, 98.5])
    b = np.array([0.5, 2.5, 9.0, 21.0, 33.5, 48.0, 60.0, 70.0, 80.0, 97.0, 98.0, 99.5])
    rates = coincidence.coincidence_rates(a, b, window=w, lag=lag, start=start, end=end)
    pp, pt = coincidence.analytic_p_values(a, b, rates, window=w, lag=lag, start=start, end=end)
    q = 1 - w / (end - start - lag)
    n_b_total = int(np.sum(b <= end - lag))  # 11: the edge-filtered count would be 9
    n_a_total = int(np.sum(a >= start + lag))  # 8
    assert rates["n_b"] < n_b_total
    n_a, n_b, kp, kt = rates["n_a"], rates["n_b"], rates["k_precursor"], rates["k_trigger"]
    pr, tr = 1 - q**n_b_total, 1 - q**n_a_total
    exp_p = sum(comb(n_a, k) * pr**k * (1 - pr) ** (n_a - k) for k in range(kp, n_a + 1))
    exp_t = sum(comb(n_b, k) * tr**k * (1 - tr) ** (n_b - k) for k in range(kt, n_b + 1))
    assert pp == pytest.approx(exp_p, rel=1e-10)
    assert pt == pytest.approx(exp_t, rel=1e-10)


def test_day_shift_keeps_time_of_day_and_observability(rng):
    day = eca_null.DAY_S
    times = np.sort(rng.uniform(0, 20 * day, 50))
    mask = eca_null.ObservingMask(0.0, 3600.0, (np.arange(20 * 24) % 24 >= 6))
    times = times[mask(times)]
    draws = eca_null.DayShift(times, 0.0, 20 * day, mask).draw(rng, 200)
    assert mask(draws).all()
    np.testing.assert_allclose(
        np.sort(np.mod(draws, day), axis=1), np.sort(np.mod(times, day))[None, :].repeat(200, 0)
    )
    assert (draws >= 0).all() and (draws <= 20 * day).all()
    assert np.unique(np.floor(draws / day)).size == 20  # days are redrawn over the record
    assert np.mean(np.all(draws == np.sort(times)[None, :], axis=1)) < 0.01


def test_day_rotation_keeps_every_gap_and_the_time_of_day(rng):
    """A whole-day turn round the record: the series is the same up to the one seam, each
    shift appears once, and events outside the record stay where they are."""
    day = eca_null.DAY_S
    times = np.sort(rng.uniform(0, 30 * day, 40))
    outside = np.array([-3 * day, 31 * day])
    rotation = eca_null.DayRotation(
        np.concatenate((outside[:1], times, outside[1:])), 0.0, 30 * day
    )
    assert rotation.n_shifts == 29
    draws = rotation.draw(rng, 999)
    assert draws.shape == (29, 42)  # every shift once: there are only 29
    np.testing.assert_array_equal(draws[:, 0], outside[0])
    np.testing.assert_array_equal(draws[:, -1], outside[1])
    inner = draws[:, 1:-1]
    assert ((inner >= 0) & (inner < 30 * day)).all()
    np.testing.assert_allclose(
        np.sort(np.mod(inner, day), axis=1), np.sort(np.mod(times, day))[None, :].repeat(29, 0)
    )
    for k, row in zip(rotation.shifts(rng, 999), inner, strict=True):
        # turning back by k days gives the record itself
        np.testing.assert_allclose(np.sort(np.mod(row - k * day, 30 * day)), times, atol=1e-6)
    # gaps: the circular gaps between events are the same multiset in every surrogate
    circ = np.sort(np.diff(np.concatenate((times, times[:1] + 30 * day))))
    for row in inner:
        np.testing.assert_allclose(
            np.sort(np.diff(np.concatenate((row, row[:1] + 30 * day)))), circ, atol=1e-6
        )
    fewer = rotation.shifts(np.random.default_rng(1), 10)
    assert fewer.size == 10 and np.unique(fewer).size == 10 and fewer.min() >= 1
    assert fewer.max() <= 29


def test_the_null_is_chosen_by_the_length_of_the_record():
    day = eca_null.DAY_S
    days = eca_null.ROTATION_MIN_DAYS
    assert eca_null.choose_null("auto", 0.0, (days - 1) * day) == "day-shift"
    assert eca_null.choose_null("auto", 0.0, days * day) == "rotation"
    assert eca_null.choose_null("rotation", 0.0, 10 * day) == "rotation"
    assert eca_null.choose_null("day-shift", 0.0, 900 * day) == "day-shift"
    with pytest.raises(ValueError, match="at least 2"):
        eca_null.choose_null("rotation", 0.0, 1.5 * day)
    with pytest.raises(ValueError, match="unknown ECA null 'shuffle'"):
        eca_null.choose_null("shuffle", 0.0, 90 * day)


def test_rotation_detects_precursors_of_clustered_series(rng):
    """Swarms of events, each followed 3 h later by a burst of onsets seen by day only:
    the rotation test, which keeps both series' clustering, still finds the coupling."""
    start = pd.Timestamp("2024-01-01")
    days = 180
    swarms = np.sort(rng.integers(0, days - 1, 12) + rng.uniform(0.25, 0.45, 12))
    events = np.concatenate([s + np.sort(rng.exponential(0.05, 15)) for s in swarms])
    onsets = np.concatenate([s + 0.125 + rng.uniform(0, 0.1, 4) for s in swarms])
    noise = rng.integers(0, days, 40) + rng.uniform(0.3, 0.7, 40)
    table = coincidence.coincidence_analysis(
        start + pd.to_timedelta(np.sort(np.concatenate((onsets, noise))), unit="D"),
        start + pd.to_timedelta(np.sort(events), unit="D"),
        windows=["2h"], lags=["0h", "2h"], start=start,
        end=start + pd.Timedelta(days=days), n_shuffles=999,
    )  # fmt: skip
    assert table.attrs["eca_null"] == "rotation"
    assert table.attrs["n_surrogates"] == days - 1
    assert table.attrs["eca_null_reason"] == f"{days}-day record"
    hit = table[table["lag_s"] == 7200].iloc[0]
    assert hit["precursor_p_shuffle"] <= 2 / days
    assert coincidence.family_p_value(table) <= 0.05


def test_rotation_surrogates_in_blocks_give_the_same_table(rng, monkeypatch):
    """A decade of events is turned a block of shifts at a time: same p-values."""
    start = pd.Timestamp("2024-01-01")
    days = 90
    onsets = start + pd.to_timedelta(np.sort(rng.uniform(0, days, 40)), unit="D")
    events = start + pd.to_timedelta(np.sort(rng.uniform(0, days, 60)), unit="D")
    kw = {"windows": ["6h", "1D"], "lags": ["0h"], "start": start,
          "end": start + pd.Timedelta(days=days), "n_shuffles": 50, "seed": 4}  # fmt: skip
    whole = coincidence.coincidence_analysis(onsets, events, **kw)
    monkeypatch.setattr(coincidence, "SURROGATE_BLOCK", 300)  # 3 shifts per block
    blocked = coincidence.coincidence_analysis(onsets, events, **kw)
    assert whole.attrs == blocked.attrs
    assert (whole.attrs["eca_null"], whole.attrs["n_surrogates"]) == ("rotation", 50)
    pd.testing.assert_frame_equal(whole, blocked)


def test_min_p_and_holm_adjustments():
    np.testing.assert_allclose(
        eca_null.holm(np.array([0.01, 0.04, np.nan, 0.03])), [0.03, 0.06, np.nan, 0.06]
    )
    rng = np.random.default_rng(3)
    surr = rng.standard_normal((999, 5))
    observed = np.array([3.5, 0.0, np.nan, -1.0, 1.0])
    raw = eca_null.exceedance_p(observed, surr)
    adj = eca_null.min_p_adjusted(observed, surr)
    assert np.isnan(raw[2]) and np.isnan(adj[2])
    ok = ~np.isnan(raw)
    assert (adj[ok] >= raw[ok] - 1e-12).all()  # adjusting never makes a p smaller
    assert adj[0] <= 0.01  # a 3.5-sigma cell stays significant among five
    assert adj[1] > 0.5


def test_coincidence_analysis_detects_precursors(rng):
    start = pd.Timestamp("2024-01-01")
    days = 200
    onsets = start + pd.to_timedelta(np.sort(rng.uniform(2, days, 30)), unit="D")
    precursors = onsets - pd.Timedelta("3h")
    noise = start + pd.to_timedelta(rng.uniform(0, days, 30), unit="D")
    events = pd.DatetimeIndex(np.sort(np.concatenate([precursors.values, noise.values])))
    table = coincidence.coincidence_analysis(
        onsets, events, windows=["1h"], lags=["0h", "2h30min"], start=start,
        end=start + pd.Timedelta(days=days), n_shuffles=199,
    )  # fmt: skip
    hit = table[table["lag_s"] == 9000].iloc[0]
    miss = table[table["lag_s"] == 0].iloc[0]
    assert hit["precursor_rate"] == pytest.approx(1.0)
    assert hit["precursor_p_poisson"] < 1e-6
    assert hit["precursor_p_shuffle"] == pytest.approx(1 / 200)
    assert miss["precursor_rate"] < 0.3
    assert miss["precursor_p_shuffle"] > 0.05
    assert hit["precursor_p_family"] <= 2 / 200  # survives the grid-wide adjustment
    assert coincidence.family_p_value(table) == pytest.approx(table["precursor_p_family"].min())
    assert list(table.columns) == list(coincidence.ECA_COLUMNS)


def test_superposed_epoch():
    index = pd.date_range("2024-01-01", periods=100, freq="1h")
    s = pd.Series(np.arange(100.0), index=index)
    onsets = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-03 00:00", "2024-01-05 02:00"])
    table, epochs = coincidence.superposed_epoch(s, onsets, before="3h", after="2h")
    assert table["offset_s"].tolist() == [-10800, -7200, -3600, 0, 3600, 7200]
    assert epochs[0].tolist() == [7, 8, 9, 10, 11, 12]
    assert np.isnan(epochs[2, -1])  # beyond the record
    assert table["n"].tolist() == [3, 3, 3, 3, 3, 2]
    assert table["mean"].iloc[3] == pytest.approx((10 + 48 + 98) / 3)


def test_clustering_p_tells_swarms_from_scattered_events(rng):
    """Against its own day-shift draws, a swarm series clusters; Poisson events do not."""
    day, days = eca_null.DAY_S, 30
    scattered = np.sort(rng.uniform(0, days * day, 40))
    swarms = np.sort(np.concatenate([s + rng.exponential(3 * 3600, 20) for s in (3e5, 1.5e6)]))
    p = {}
    for name, times in {"scattered": scattered, "swarms": swarms}.items():
        draws = eca_null.DayShift(times, 0.0, days * day).draw(rng, 199)
        p[name] = eca_null.clustering_p(times, draws, 0.0)
    assert p["swarms"] == pytest.approx(1 / 200)
    assert p["scattered"] > 0.05
    assert eca_null.clustering_p(swarms[:2], draws[:, :2], 0.0) == 1.0  # too few to tell


def test_auto_says_why_it_chose_its_null(rng):
    start = pd.Timestamp("2024-01-01")
    onsets = start + pd.to_timedelta(np.sort(rng.uniform(0, 20, 25)), unit="D")
    swarm = start + pd.to_timedelta(np.sort(4 + rng.exponential(0.1, 30)), unit="D")
    kw = {"windows": ["6h"], "lags": ["0h"], "start": start, "n_shuffles": 99}
    table = coincidence.coincidence_analysis(onsets, swarm, end=start + pd.Timedelta(days=20), **kw)
    assert table.attrs["eca_null"] == "rotation"
    assert table.attrs["n_surrogates"] == 19
    assert table.attrs["eca_null_reason"].startswith("20-day record; day-to-day clustering p:")
    assert "events 0.01" in table.attrs["eca_null_reason"]
