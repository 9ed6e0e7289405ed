"""Making series fit for a surrogate correlation test, and the surrogates themselves.

A surrogate test assumes each series is stationary: a trend, a random walk or a daily
cycle shared by both series correlates them without any physical link. This module
removes those (:func:`prepare`: linear detrending or first differences, chosen by
:func:`looks_integrated` under ``"auto"``; the mean daily cycle when
:func:`diurnal_peak` finds one) and draws the surrogates (:func:`phase_surrogates`,
:func:`iaaft_surrogates`). Pure numpy. Methods: docs/catalogue.md, section 6.1.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Detrend = Literal["auto", "linear", "difference", "none"]
Deseason = Literal["auto", "on", "off"]

#: Power at 1/day over the median power of its neighbours above which a daily cycle is
#: "detected" (an exponential periodogram ordinate exceeds 20x its mean with p ~ 2e-9).
DIURNAL_RATIO = 20.0

#: Lag-1 autocorrelation of first differences above which ``"auto"`` keeps the levels
#: (differencing a stationary AR(1) with phi makes the differences' lag-1 value
#: ``-(1 - phi) / 2``, close to 0 only for a random walk).
_INTEGRATED_DIFF_R1 = -0.1


def _filled(x: np.ndarray) -> np.ndarray:
    """NaNs linearly interpolated (constant at the ends); all-NaN stays all-NaN."""
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return x.copy()
    return np.interp(np.arange(x.size), np.flatnonzero(ok), x[ok])


def remove_linear_trend(x: np.ndarray) -> np.ndarray:
    """``x`` minus its least-squares line over the finite values (NaNs stay NaN)."""
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return x.copy()
    t = np.arange(x.size, dtype=np.float64)
    slope, icpt = np.polyfit(t[ok], x[ok], 1)
    return x - (slope * t + icpt)


def _lag1(x: np.ndarray) -> float:
    ok = np.isfinite(x[1:]) & np.isfinite(x[:-1])
    if ok.sum() < 10:
        return float("nan")
    u, v = x[1:][ok], x[:-1][ok]
    if u.std() == 0 or v.std() == 0:
        return float("nan")
    return float(np.corrcoef(u, v)[0, 1])


def looks_integrated(x: np.ndarray) -> bool:
    """Heuristic unit-root check: do the first differences look like white noise or worse?

    For a stationary AR(1) the differences are anti-correlated (lag-1 r = -(1-phi)/2);
    for a random walk they are uncorrelated. A lag-1 r above -0.1 of the differences
    together with a lag-1 r above 0.9 of the levels says "difference it".
    """
    level = _lag1(remove_linear_trend(x))
    diff = _lag1(np.diff(x))
    return bool(level > 0.9 and diff > _INTEGRATED_DIFF_R1)


def diurnal_peak(x: np.ndarray, step_s: float) -> bool:
    """Does the periodogram of ``x`` have a peak at one cycle per day?

    Needs at least four days and bins shorter than 6 h. The power at the Fourier bin
    nearest 1/day is compared with the median power of the 20 bins on either side.
    """
    per_day = 86_400.0 / step_s
    n = x.size
    if step_s > 6 * 3600 or n < 4 * per_day:
        return False
    y = _filled(remove_linear_trend(x))
    if not np.isfinite(y).all():
        return False
    power = np.abs(np.fft.rfft(y - y.mean())) ** 2
    k = round(n / per_day)
    lo, hi = max(1, k - 20), min(power.size, k + 21)
    neigh = np.concatenate((power[lo : max(lo, k - 1)], power[k + 2 : hi]))
    if neigh.size < 5 or k >= power.size:
        return False
    return bool(power[k] > DIURNAL_RATIO * np.median(neigh))


def remove_daily_cycle(x: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
    """``x`` minus the mean of its time-of-day slot (over the finite values)."""
    slot = (index.asi8 // 10**9) % 86_400
    codes, inverse = np.unique(slot, return_inverse=True)
    ok = np.isfinite(x)
    sums = np.bincount(inverse[ok], weights=x[ok], minlength=codes.size)
    counts = np.bincount(inverse[ok], minlength=codes.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return x - np.nan_to_num(means)[inverse]


def prepare(
    a: np.ndarray,
    s: np.ndarray,
    index: pd.DatetimeIndex,
    step_s: float,
    *,
    detrend: Detrend = "auto",
    deseason: Deseason = "auto",
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Both series made stationary in the same way; returns (a, s, what was done).

    ``detrend``: ``"linear"`` removes each series' line; ``"difference"`` takes first
    differences (lag 0 of the differences pairs the same bins); ``"auto"`` differences
    when either series :func:`looks_integrated`, else removes the lines. ``deseason``:
    ``"auto"`` removes the mean daily cycle of both when either has a
    :func:`diurnal_peak`.
    """
    a = np.asarray(a, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    method = detrend
    if detrend == "auto":
        method = "difference" if looks_integrated(a) or looks_integrated(s) else "linear"
    peak = {"activity": diurnal_peak(a, step_s), "seismic": diurnal_peak(s, step_s)}
    daily = deseason == "on" or (deseason == "auto" and any(peak.values()))
    if daily:
        a, s = remove_daily_cycle(a, index), remove_daily_cycle(s, index)
    if method == "linear":
        a, s = remove_linear_trend(a), remove_linear_trend(s)
    elif method == "difference":
        a = np.concatenate(([np.nan], np.diff(a)))
        s = np.concatenate(([np.nan], np.diff(s)))
    info = {
        "detrend": method,
        "detrend_requested": detrend,
        "daily_cycle_removed": daily,
        "diurnal_peak": peak,
    }
    return a, s, info


def phase_surrogates(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` phase-randomised copies of ``x`` (same power spectrum, so same autocorrelation).

    NaNs are filled by linear interpolation before the FFT; callers re-apply the mask.
    """
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    if not ok.any():
        return np.full((n, x.size), np.nan)
    filled = _filled(x)
    mean = filled.mean()
    spec = np.fft.rfft(filled - mean)
    phases = rng.uniform(0, 2 * np.pi, (n, spec.size))
    phases[:, 0] = 0.0
    if x.size % 2 == 0:
        phases[:, -1] = 0.0  # Nyquist stays real
    return np.fft.irfft(spec * np.exp(1j * phases), x.size, axis=-1) + mean


def iaaft_surrogates(
    x: np.ndarray, n: int, rng: np.random.Generator, *, iterations: int = 50
) -> np.ndarray:
    """``n`` IAAFT surrogates (Schreiber & Schmitz 1996): the values of ``x`` reordered so
    that the power spectrum is (nearly) that of ``x``.

    For skewed series (shares bounded at 0, log RSAM spikes) phase surrogates are
    Gaussian and the test can be miscalibrated; IAAFT keeps the value distribution
    exactly and the spectrum approximately. NaNs are filled first, as for phase surrogates.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).any():
        return np.full((n, x.size), np.nan)
    filled = _filled(x)
    amp = np.abs(np.fft.rfft(filled))
    sorted_vals = np.sort(filled)
    y = np.stack([rng.permutation(filled) for _ in range(n)])
    for _ in range(iterations):
        spec = np.fft.rfft(y, axis=-1)
        y = np.fft.irfft(amp * np.exp(1j * np.angle(spec)), x.size, axis=-1)
        order = np.argsort(y, axis=-1)
        np.put_along_axis(y, order, np.broadcast_to(sorted_vals, y.shape), axis=-1)
    return y
