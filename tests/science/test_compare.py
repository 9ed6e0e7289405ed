"""Seismic comparison: lag recovery, false positives, coincidence rates, epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from plumenet.science import compare


def _ar1(rng, n, phi=0.8, size=None):
    shape = (n,) if size is None else (size, n)
    e = rng.standard_normal(shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0]
    for i in range(1, n):
        x[..., i] = phi * x[..., i - 1] + e[..., i]
    return x


def test_injected_lag_is_recovered(rng):
    n, lag_bins = 24 * 40, 5  # 40 days of hourly bins, seismic leads by 5 h
    index = pd.date_range("2024-01-01", periods=n, freq="1h")
    driver = _ar1(rng, n + lag_bins, phi=0.9)
    seismic = pd.Series(driver[lag_bins:], index=index)  # seismic(t) = driver(t + lag)
    act = pd.Series(driver[:n] + 0.5 * rng.standard_normal(n), index=index)
    act[index.hour < 6] = np.nan  # nights: nothing observable
    # seismic(t - L) = driver(t - L + L)... activity(t) = driver(t) = seismic(t - L)
    out = compare.cross_correlation(act, seismic, max_lag="24h", n_surrogates=199)
    assert abs(out["best_lag_s"] - lag_bins * 3600) <= 3600
    assert out["r"] > 0.5
    assert out["p_value"] <= 0.01
    table_r = out["table"].set_index("lag_s")["r"]
    assert table_r.idxmax() == pytest.approx(out["best_lag_s"])


def test_lagged_correlation_matches_direct_pearson(rng):
    a = rng.standard_normal(200)
    s = rng.standard_normal(200) + np.roll(a, -3)
    a[[5, 50, 51]] = np.nan
    s[[7, 8]] = np.nan
    lags, r, _ = compare.lagged_correlation(a, s, 6)
    for k, rk in zip(lags, r, strict=True):
        x, y = (a[k:], s[: s.size - k]) if k >= 0 else (a[:k], s[-k:])
        ok = np.isfinite(x) & np.isfinite(y)
        assert rk == pytest.approx(stats.pearsonr(x[ok], y[ok])[0], abs=1e-9)


def test_false_positive_rate_for_independent_series():
    n, seeds, alpha = 300, 60, 0.05
    rejections = 0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        index = pd.date_range("2024-01-01", periods=n, freq="1h")
        x = pd.Series(_ar1(rng, n, phi=0.9), index=index)
        y = pd.Series(_ar1(rng, n, phi=0.9), index=index)
        out = compare.cross_correlation(x, y, max_lag="12h", n_surrogates=99, seed=seed)
        rejections += out["p_value"] <= alpha
    assert rejections / seeds <= 0.1


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
    out = compare.coincidence_rates(
        np.array(a), np.array(b), window=window, lag=lag, start=0.0, end=45.0
    )
    n_a, n_b, kp, kt = _brute_force(a, b, window, lag, 0.0, 45.0)
    assert (out["n_a"], out["n_b"], out["k_precursor"], out["k_trigger"]) == (n_a, n_b, kp, kt)
    assert out["precursor_rate"] == pytest.approx(kp / n_a)
    assert out["trigger_rate"] == pytest.approx(kt / n_b)


def test_poisson_p_value_matches_formula():
    from math import comb

    n_a, n_b, kp, kt, w, lag, span = 8, 12, 5, 4, 2.0, 1.0, 100.0
    pp, pt = compare.poisson_p_values(n_a, n_b, kp, kt, window=w, lag=lag, span=span)
    q = 1 - w / (span - lag)
    exp_p = sum(
        comb(n_a, k) * (1 - q**n_b) ** k * (q**n_b) ** (n_a - k) for k in range(kp, n_a + 1)
    )
    exp_t = sum(
        comb(n_b, k) * (1 - q**n_a) ** k * (q**n_a) ** (n_b - k) for k in range(kt, n_b + 1)
    )
    assert pp == pytest.approx(exp_p, rel=1e-10)
    assert pt == pytest.approx(exp_t, rel=1e-10)


def test_coincidence_analysis_detects_precursors(rng):
    start = pd.Timestamp("2024-01-01")
    days = 200
    onsets = start + pd.to_timedelta(np.sort(rng.uniform(2, days, 30)), unit="D")
    precursors = onsets - pd.Timedelta("3h")
    noise = start + pd.to_timedelta(rng.uniform(0, days, 30), unit="D")
    events = pd.DatetimeIndex(np.sort(np.concatenate([precursors.values, noise.values])))
    table = compare.coincidence_analysis(
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


def test_superposed_epoch():
    index = pd.date_range("2024-01-01", periods=100, freq="1h")
    s = pd.Series(np.arange(100.0), index=index)
    onsets = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-03 00:00", "2024-01-05 02:00"])
    table, epochs = compare.superposed_epoch(s, onsets, before="3h", after="2h")
    assert table["offset_s"].tolist() == [-10800, -7200, -3600, 0, 3600, 7200]
    assert epochs[0].tolist() == [7, 8, 9, 10, 11, 12]
    assert np.isnan(epochs[2, -1])  # beyond the record
    assert table["n"].tolist() == [3, 3, 3, 3, 3, 2]
    assert table["mean"].iloc[3] == pytest.approx((10 + 48 + 98) / 3)


def test_compare_bundles_json_ready_results(rng):
    index = pd.date_range("2024-01-01", periods=24 * 20, freq="1h")
    act = pd.Series(rng.uniform(0, 1, index.size), index=index)
    rsam = pd.Series(
        np.exp(rng.standard_normal(index.size * 6)),
        index=pd.date_range("2024-01-01", periods=index.size * 6, freq="10min", tz="UTC"),
    )
    episodes = pd.DataFrame(
        {"class": ["any_emission"] * 3, "onset": pd.to_datetime(
            ["2024-01-05", "2024-01-09", "2024-01-15"], utc=True)}
    )  # fmt: skip
    events = pd.DataFrame(
        {"time": pd.to_datetime(["2024-01-04 23:00", "2024-01-12 00:00"], utc=True)}
    )
    out = compare.compare(act, rsam, events, episodes, n_surrogates=49, n_shuffles=49)
    assert set(out["xcorr"]) >= {"best_lag_s", "r", "p_value"}
    assert len(out["coincidence"]) == 9
    assert out["epoch"]["n_onsets"] == 3
    assert set(out["tables"]) == {"xcorr", "coincidence", "epoch"}
    none = compare.compare(act, None, None, None)
    assert none["xcorr"] is None and none["coincidence"] is None


def test_fft_path_equals_direct_path(rng, monkeypatch):
    a = rng.standard_normal(600)
    s = rng.standard_normal(600) + np.roll(a, -4)
    a[::7] = np.nan
    s[::11] = np.nan
    surr = rng.standard_normal((3, 600))
    _, r_direct, q_direct = compare.lagged_correlation(a, s, 20, surrogates=surr)
    monkeypatch.setattr(compare, "_DIRECT_MAX_ELEMENTS", 0)
    lags, r_fft, q_fft = compare.lagged_correlation(a, s, 20, surrogates=surr)
    np.testing.assert_allclose(r_fft, r_direct, atol=1e-12)
    np.testing.assert_allclose(q_fft, q_direct, atol=1e-12)
    assert lags[np.nanargmax(r_fft)] == 4
