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


def test_rotation_surrogates_turn_rsam_by_every_whole_day(rng):
    """60 days at ±12 h: auto picks the rotation, uses all 59 turns, and finds the lag."""
    n, lag_bins = 24 * 60, 5
    index = pd.date_range("2024-01-01", periods=n, freq="1h")
    driver = _ar1(rng, n + lag_bins, phi=0.9)
    seismic = pd.Series(driver[lag_bins:], index=index)
    act = pd.Series(driver[:n] + 0.5 * rng.standard_normal(n), index=index)
    act[index.hour < 6] = np.nan
    out = correlation.cross_correlation(act, seismic, max_lag="12h", n_surrogates=499)
    assert out["preprocessing"]["surrogates"] == "rotation"
    assert out["preprocessing"]["surrogates_requested"] == "auto"
    assert out["n_surrogates"] == 59
    assert out["best_lag_s"] == lag_bins * 3600
    assert out["p_value"] == pytest.approx(1 / 60)  # above every turn: the finest p there is
    fewer = correlation.cross_correlation(act, seismic, max_lag="12h", n_surrogates=20, seed=3)
    assert fewer["n_surrogates"] == 20
    assert fewer["p_value"] == pytest.approx(1 / 21)


def test_each_rotation_brings_its_own_gaps(rng):
    """A turned series moves its NaNs with it: r per lag equals direct Pearson."""
    per_day, days = 24, 5
    a = rng.standard_normal(per_day * days - 7)  # a partial last day, padded with NaN
    s = rng.standard_normal(a.size) + np.roll(a, 2)
    a[[3, 40, 41]] = np.nan
    s[10:20] = np.nan
    k_max = 6
    a_pad, s_pad = (np.r_[x, np.full(7, np.nan)] for x in (a, s))
    corr = correlation._Correlator(a_pad, s_pad, k_max)
    turned = correlation._rotated(s, per_day, np.array([2]))
    r = corr.own_masks(turned)[0]
    for k, rk in zip(range(-k_max, k_max + 1), r, strict=True):
        y = np.roll(s_pad, 2 * per_day)
        x, y = (a_pad[k:], y[: y.size - k]) if k >= 0 else (a_pad[:k], y[-k:])
        ok = np.isfinite(x) & np.isfinite(y)
        assert rk == pytest.approx(stats.pearsonr(x[ok], y[ok])[0], abs=1e-9)


def test_rotation_on_a_short_record_is_coarse_and_says_so(rng):
    index = pd.date_range("2024-01-01", periods=24 * 3, freq="1h")
    x, y = (pd.Series(rng.standard_normal(index.size), index=index) for _ in "xy")
    auto = correlation.cross_correlation(x, y, max_lag="12h", n_surrogates=99)
    assert auto["preprocessing"]["surrogates"] == "phase"  # 3 days: rotations too few
    out = correlation.cross_correlation(x, y, max_lag="12h", surrogates="rotation")
    assert out["n_surrogates"] == 2
    assert out["p_value"] >= 1 / 3
    odd = pd.date_range("2024-01-01", periods=50, freq="7h")  # 7 h bins do not divide a day
    z = pd.Series(rng.standard_normal(odd.size), index=odd)
    with pytest.raises(ValueError, match="rotation surrogates need a record of two days"):
        correlation.cross_correlation(z, z, max_lag="14h", surrogates="rotation")
    with pytest.raises(ValueError, match="unknown surrogates 'shuffle'; use one of auto, rot"):
        correlation.cross_correlation(x, y, surrogates="shuffle")


def test_irregular_bins_are_refused(rng):
    """Dropped night rows instead of NaN would make a lag of k rows mean different times."""
    index = pd.date_range("2024-01-01", periods=24 * 4, freq="1h")
    x = pd.Series(rng.standard_normal(index.size), index=index)
    day = x[(index.hour >= 6) & (index.hour < 18)]
    with pytest.raises(ValueError, match=r"activity bins are not regular: 3 step\(s\) differ"):
        correlation.cross_correlation(day, x, max_lag="6h", n_surrogates=9)
