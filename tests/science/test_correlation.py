"""Lagged correlation: injected lags, agreement with direct Pearson, false positives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import signal, stats

from plumenet.science import correlation


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
    out = correlation.cross_correlation(act, seismic, max_lag="24h", n_surrogates=199)
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
    lags, r, _ = correlation.lagged_correlation(a, s, 6)
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
        out = correlation.cross_correlation(x, y, max_lag="12h", n_surrogates=99, seed=seed)
        rejections += out["p_value"] <= alpha
    assert rejections / seeds <= 0.1


def test_fft_path_equals_direct_path(rng, monkeypatch):
    a = rng.standard_normal(600)
    s = rng.standard_normal(600) + np.roll(a, -4)
    a[::7] = np.nan
    s[::11] = np.nan
    surr = rng.standard_normal((3, 600))
    _, r_direct, q_direct = correlation.lagged_correlation(a, s, 20, surrogates=surr)
    monkeypatch.setattr(correlation, "_DIRECT_MAX_ELEMENTS", 0)
    lags, r_fft, q_fft = correlation.lagged_correlation(a, s, 20, surrogates=surr)
    np.testing.assert_allclose(r_fft, r_direct, atol=1e-12)
    np.testing.assert_allclose(q_fft, q_direct, atol=1e-12)
    assert lags[np.nanargmax(r_fft)] == 4


def _lead_pair(rng, days: int, lead_steps: int) -> tuple[pd.Series, pd.Series]:
    """10-min activity and seismic series; seismic leads by ``lead_steps`` x 10 min."""
    n = days * 144
    index = pd.date_range("2024-01-01", periods=n, freq="10min")
    e = rng.standard_normal(n + lead_steps)
    driver = signal.lfilter([1.0], [1.0, -0.97], e)  # smooth: hours-long correlation
    act = pd.Series(driver[:n] + 0.3 * rng.standard_normal(n), index=index)
    seis = pd.Series(driver[lead_steps:], index=index)  # seismic(t) = driver(t + lead)
    return act, seis


def test_30_min_lead_at_10_min_bins_is_recovered_exactly(rng):
    act, seis = _lead_pair(rng, 10, 3)
    out = correlation.cross_correlation(act, seis, max_lag="6h", n_surrogates=99)
    assert out["bin_s"] == 600
    assert out["best_lag_s"] == 1800
    assert abs(out["best_lag_refined_s"] - 1800) <= 300
    assert out["p_value"] <= 0.01


def test_30_min_lead_at_1_h_bins_within_15_min_with_refinement(rng):
    for _ in range(5):
        act, seis = _lead_pair(rng, 20, 3)
        hourly_a, hourly_s = act.resample("1h").mean(), seis.resample("1h").mean()
        out = correlation.cross_correlation(hourly_a, hourly_s, max_lag="12h", n_surrogates=0)
        assert out["best_lag_s"] in (0.0, 3600.0)  # quantised to the bin
        assert abs(out["best_lag_refined_s"] - 1800) <= 900
        assert 0 < out["lag_uncertainty_s"] < 3600
        assert abs(out["best_lag_refined_s"] - 1800) <= 3 * out["lag_uncertainty_s"]


def test_refine_peak_of_a_sampled_parabola():
    x = np.arange(-5, 6)
    r = 0.8 - 0.02 * (x - 0.3) ** 2
    delta, unc = correlation.refine_peak(r, int(np.argmax(r)), n_eff=400)
    assert delta == pytest.approx(0.3)
    se = (1 - 0.8**2) / 20
    assert unc == pytest.approx(np.sqrt(2 * se / 0.04))
    assert np.isnan(correlation.refine_peak(r, 0, 400)[1])  # peak at the edge: no refinement
