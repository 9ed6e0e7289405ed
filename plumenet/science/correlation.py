"""Lagged correlation of activity with a seismic series, tested against surrogates.

Putting RSAM on the activity bins (:func:`align_rsam`), NaN-aware lagged Pearson
correlation (:func:`lagged_correlation`, by BLAS products or FFT), and the max-|r| test
over all lags against surrogates after detrending and removing the daily cycle
(:func:`cross_correlation`: whole-day rotations of the seismic series, which keep its
swarms, or phase / IAAFT surrogates), with a sub-bin lag (:func:`refine_peak`).

Sign convention: a lag is in seconds and POSITIVE when the seismic signal LEADS the
emissions (seismic at ``t - lag`` goes with activity at ``t``). Method:
docs/catalogue.md, section 6.1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import fft

from plumenet.science.stationarity import (
    Deseason,
    Detrend,
    iaaft_surrogates,
    phase_surrogates,
    prepare,
)
from plumenet.timeutil import naive_utc_index

#: Fewest overlapping (finite) pairs for a correlation at one lag to be reported.
MIN_PAIRS = 10


def bin_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The (median) spacing of a regular time index; fewer than two bins is an error."""
    if len(index) < 2:
        raise ValueError("need at least two time bins to compare series")
    return pd.Timedelta(int(np.median(np.diff(index.asi8))), unit="ns")


def align_rsam(rsam: pd.Series, index: pd.DatetimeIndex, *, log_scale: bool = True) -> pd.Series:
    """RSAM averaged into the activity bins (bin = [t, t + step)), log10 by default.

    Non-positive RSAM has no logarithm and becomes NaN.
    """
    step = bin_step(index)
    r = rsam.astype(np.float64).copy()
    r.index = naive_utc_index(r.index)
    binned = r.groupby(r.index.floor(step)).mean().reindex(index)
    if log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            binned = np.log10(binned.where(binned > 0))
    binned.name = "log10_rsam" if log_scale else "rsam"
    return binned


#: Largest lag-window matrix (lags x samples) for the direct (BLAS) path; beyond it, FFT.
_DIRECT_MAX_ELEMENTS = 20_000_000


class _LagSums:
    """sum_i x[i] y[..., i - k] for k = -K..K, for a fixed set of x and many y.

    Direct: y (zero-padded) times a sliding-window matrix of x, one BLAS product for
    many surrogates at once. FFT (zero-padded, no wrap-around) when the window
    matrix would be too large (very long lag ranges).
    """

    def __init__(self, xs: list[np.ndarray], max_lag: int) -> None:
        self.n = xs[0].size
        self.k = max_lag
        self.count = len(xs)
        self.direct = (2 * max_lag + 1) * (self.n + 2 * max_lag) <= _DIRECT_MAX_ELEMENTS
        if self.direct:
            wins = []
            for x in xs:
                xp = np.zeros(self.n + 4 * max_lag)
                xp[2 * max_lag : 2 * max_lag + self.n] = x
                # win[t, j] = xp[t + j]: (n + 2K) x (2K + 1), rows contiguous in xp
                wins.append(np.lib.stride_tricks.sliding_window_view(xp, 2 * max_lag + 1))
            self.win = np.concatenate(wins, axis=1)  # (n + 2K) x (len(xs) * (2K + 1))
        else:
            self.n_fft = fft.next_fast_len(2 * self.n, real=True)
            self.specs = [fft.rfft(x, self.n_fft, workers=-1) for x in xs]

    def __call__(self, y: np.ndarray, count: int | None = None) -> list[np.ndarray]:
        """One (..., 2K+1) array for each of the first ``count`` x, for y of shape (..., n)."""
        n_lags = 2 * self.k + 1
        count = self.count if count is None else count
        if self.direct:
            yp = np.zeros((*y.shape[:-1], self.n + 2 * self.k))
            yp[..., self.k : self.k + self.n] = y
            out = yp @ self.win[:, : count * n_lags]
            return [out[..., i * n_lags : (i + 1) * n_lags] for i in range(count)]
        f_y = np.conj(fft.rfft(y, self.n_fft, axis=-1, workers=-1))
        res = []
        for f_x in self.specs[:count]:
            c = fft.irfft(f_x * f_y, self.n_fft, axis=-1, workers=-1)
            res.append(np.concatenate((c[..., self.n_fft - self.k :], c[..., : self.k + 1]), -1))
        return res


class _Correlator:
    """Lagged Pearson r of a fixed ``a`` with ``s`` or with surrogates of ``s`` (same mask)."""

    def __init__(self, a: np.ndarray, s: np.ndarray, max_lag: int) -> None:
        ma = np.isfinite(a).astype(np.float64)
        self.ms = np.isfinite(s).astype(np.float64)
        a0 = np.where(ma > 0, a - np.nanmean(a), 0.0)
        self.s_mean = np.nanmean(s)
        self.sums = _LagSums([ma, a0, a0 * a0], max_lag)
        cnt, self.sa, self.saa = self.sums(self.ms)
        self.cnt = np.rint(cnt)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """r per lag (last axis) for series ``values`` (..., n); NaNs of ``s`` are masked."""
        y = np.where(self.ms > 0, values - self.s_mean, 0.0)
        return self._r(self.cnt, self.sa, self.saa, y)

    def own_masks(self, values: np.ndarray) -> np.ndarray:
        """r per lag for series ``values`` (m, n) that bring their own NaNs (rotations of ``s``)."""
        ms = np.isfinite(values).astype(np.float64)
        cnt, sa, saa = self.sums(ms)
        y = np.where(ms > 0, values - self.s_mean, 0.0)
        return self._r(np.rint(cnt), sa, saa, y)

    def _r(self, cnt: np.ndarray, sa: np.ndarray, saa: np.ndarray, y: np.ndarray) -> np.ndarray:
        sy, say = self.sums(y, 2)
        (syy,) = self.sums(y * y, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = say - sa * sy / cnt
            va = saa - sa * sa / cnt
            vy = syy - sy * sy / cnt
            r = cov / np.sqrt(va * vy)
        r = np.where((cnt >= MIN_PAIRS) & (va > 1e-12) & (vy > 1e-12), r, np.nan)
        return np.clip(r, -1.0, 1.0)


def lagged_correlation(
    a: np.ndarray, s: np.ndarray, max_lag: int, *, surrogates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Pearson r(k) of pairs (a[i], s[i - k]) for k = -max_lag..max_lag, NaN-aware.

    Every sum over the overlapping finite pairs is a lagged product sum of masked
    series (:class:`_LagSums`). ``surrogates`` (m x n) replace ``s`` values but keep
    its NaN mask; their correlations come back as an m x lags array. Returns
    (lags, r, r_surrogates).
    """
    corr = _Correlator(a, s, max_lag)
    r = corr(np.nan_to_num(s))
    r_surr = corr(surrogates) if surrogates is not None else None
    return np.arange(-max_lag, max_lag + 1), r, r_surr


def refine_peak(r: np.ndarray, best: int, n_eff: float) -> tuple[float, float]:
    """Sub-bin peak of |r| by a parabola through the best lag and its neighbours.

    Returns (offset in bins, in [-0.5, 0.5], uncertainty in bins). The uncertainty is the
    half-width over which the parabola drops by one standard error of r,
    ``(1 - r^2) / sqrt(n_eff)``: lags inside it fit the data as well as the peak does.
    (0, NaN) when the peak is at the end of the lag range or a neighbour is NaN.
    """
    if best <= 0 or best >= r.size - 1:
        return 0.0, float("nan")
    y = np.sign(r[best]) * r[best - 1 : best + 2]
    if not np.isfinite(y).all():
        return 0.0, float("nan")
    curv = y[0] - 2 * y[1] + y[2]
    if curv >= 0:
        return 0.0, float("nan")
    delta = float(np.clip(0.5 * (y[0] - y[2]) / curv, -0.5, 0.5))
    peak = y[1] - 0.25 * (y[0] - y[2]) * delta
    se = (1 - min(peak, 1.0) ** 2) / np.sqrt(max(n_eff, 1.0))
    return delta, float(np.sqrt(2 * se / -curv))


def effective_pairs(a: np.ndarray, s: np.ndarray, n_pairs: int) -> float:
    """Pairs corrected for autocorrelation (Bartlett, AR(1)): n (1 - ra rs) / (1 + ra rs)."""

    def lag1(x: np.ndarray) -> float:
        ok = np.isfinite(x[1:]) & np.isfinite(x[:-1])
        if ok.sum() < 3 or np.std(x[1:][ok]) == 0 or np.std(x[:-1][ok]) == 0:
            return 0.0
        return float(np.corrcoef(x[1:][ok], x[:-1][ok])[0, 1])

    rho = lag1(a) * lag1(s)
    return n_pairs * (1 - rho) / (1 + rho)


#: Surrogate generators by name (``surrogates=`` of :func:`cross_correlation`).
SURROGATES = {"phase": phase_surrogates, "iaaft": iaaft_surrogates}
#: Every ``surrogates=`` choice: the generators, ``"rotation"`` and ``"auto"``.
SURROGATE_METHODS = ("auto", "rotation", *SURROGATES)
#: Largest share of the record that ``"auto"`` lets the lag search span before it gives
#: up rotation: the search's whole days over the record's days is the smallest p a
#: rotation test can give (here 1/40).
ROTATION_MAX_SEARCH_SHARE = 0.025


def rotation_days(n_bins: int, step: pd.Timedelta) -> int:
    """Whole days a record of ``n_bins`` spans (a partial last day counts), 0 when a day
    is not a whole number of bins (then there are no rotations)."""
    per_day, rest = divmod(pd.Timedelta("1D"), step)
    if rest or per_day < 1:
        return 0
    return -(-n_bins // per_day)


def search_days(max_lag_bins: int, step: pd.Timedelta) -> int:
    """Whole-day rotations whose lag search still reaches a lag found at 0: 2 L + 1, with
    L the whole days in ``max_lag_bins``. A rotation test's p cannot go below this many
    over the record's days: those rotations see the same peak."""
    per_day = max(1, int(pd.Timedelta("1D") // step))
    return 2 * (max_lag_bins // per_day) + 1


def _rotated(s: np.ndarray, per_day: int, shifts: np.ndarray) -> np.ndarray:
    """``s`` padded with NaN to whole days and turned by each of ``shifts`` days (m x n)."""
    days = -(-s.size // per_day)
    padded = np.full(days * per_day, np.nan)
    padded[: s.size] = s
    return np.stack([np.roll(padded, int(k) * per_day) for k in shifts])


def choose_surrogates(method: str, days: int = 0, search: int = 1) -> str:
    """The surrogates used for ``method``: ``"auto"`` is rotation when the lag search's
    ``search`` days are at most :data:`ROTATION_MAX_SEARCH_SHARE` of the record's ``days``
    (so that p can go below 0.05 with room), else phase."""
    if method not in SURROGATE_METHODS:
        known = ", ".join(SURROGATE_METHODS)
        raise ValueError(f"unknown surrogates {method!r}; use one of {known}")
    if method == "auto":
        usable = days > 1 and search <= ROTATION_MAX_SEARCH_SHARE * days
        return "rotation" if usable else "phase"
    return method


def check_regular(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The step of a regular index; ValueError when bins are missing or uneven.

    Lags are counted in bins, so a series whose unseen bins were dropped (rather than
    kept as NaN) would mix lags of different lengths.
    """
    step = bin_step(index)
    gaps = np.flatnonzero(np.diff(index.asi8) != step.value)
    if gaps.size:
        at = index[gaps[0]]
        raise ValueError(
            f"activity bins are not regular: {gaps.size} step(s) differ from the "
            f"{step / pd.Timedelta('1h'):g} h step "
            f"(first after {at}); keep unseen bins as NaN on a regular grid "
            "(e.g. series.resample(step).mean())"
        )
    return step


def cross_correlation(
    activity: pd.Series,
    seismic: pd.Series,
    *,
    max_lag: str = "72h",
    n_surrogates: int = 499,
    seed: int | None = 0,
    detrend: Detrend = "auto",
    deseason: Deseason = "auto",
    surrogates: str = "auto",
) -> dict[str, object]:
    """Lagged correlation of activity with a seismic series on the same bins.

    Both series are first made stationary (:func:`plumenet.science.stationarity.prepare`:
    trend or differences, and the mean daily cycle; what was done is in
    ``preprocessing``). The p-value is for the largest |r| over all lags (the lag
    search is part of the test): the share of seismic surrogates whose largest |r| is
    at least as large, ``(1 + #) / (1 + n)``; ``r_global_q95`` is the 95 % quantile of
    that largest |r|, the band the plot draws. Surrogates: ``"rotation"`` turns the
    seismic series round the record by every whole day (the circular-shift test; keeps
    its bursts, tails and time of day, so it stays valid for swarms against eruptive
    phases; a random ``n_surrogates`` of the turns when there are more), but p cannot go
    below :func:`search_days` over the record's days; ``"phase"`` or ``"iaaft"`` redraw
    it from its spectrum (p as fine as wanted, but they assume no bursts); ``"auto"``
    picks rotation when the lag search is at most :data:`ROTATION_MAX_SEARCH_SHARE` of
    the record (from 40 days at ±12 h, 280 days at ±72 h), else phase. Lags are searched
    up to ``max_lag`` but never beyond a quarter of the record (the usual N/4 rule). The best
    lag is refined below one bin by a parabola (``best_lag_refined_s`` with
    ``lag_uncertainty_s``).
    """
    choose_surrogates(surrogates)  # an unknown name fails before any work
    index = naive_utc_index(activity.index)
    step = check_regular(index)
    seis = seismic.copy()
    seis.index = naive_utc_index(seis.index)
    seis = seis.reindex(index)
    k_max = int(pd.Timedelta(max_lag) // step)
    k_max = max(0, min(k_max, len(index) // 4, len(index) - MIN_PAIRS))
    a = activity.to_numpy(dtype=np.float64, na_value=np.nan)
    s = seis.to_numpy(dtype=np.float64, na_value=np.nan)
    a, s, info = prepare(a, s, index, step.total_seconds(), detrend=detrend, deseason=deseason)
    days = rotation_days(len(index), step)
    method = choose_surrogates(surrogates, days, search_days(k_max, step))
    info["surrogates"] = method
    info["surrogates_requested"] = surrogates
    if method == "rotation" and n_surrogates > 0 and days < 2:
        raise ValueError(
            f"rotation surrogates need a record of two days or more in bins that divide a "
            f"day (got {len(index)} bins of {step / pd.Timedelta('1h'):g} h); use phase or iaaft "
            "surrogates"
        )
    rng = np.random.default_rng(seed)
    corr = _Correlator(a, s, k_max)
    lags = np.arange(-k_max, k_max + 1)
    r = corr(np.nan_to_num(s))
    r_surr = None
    if n_surrogates > 0:
        # Batches bound memory for long series.
        batch = max(1, int(4_000_000 // max(a.size, 1)))
        if method == "rotation":  # every whole-day turn, or a random n_surrogates of them
            shifts = np.arange(1, days)
            if n_surrogates < shifts.size:
                shifts = np.sort(rng.choice(shifts, n_surrogates, replace=False))
            n_surrogates = int(shifts.size)
            per_day = int(pd.Timedelta("1D") // step)
            a_pad, s_pad = (_rotated(x, per_day, np.zeros(1, dtype=np.int64))[0] for x in (a, s))
            corr_pad = _Correlator(a_pad, s_pad, k_max)  # each rotation brings its own mask
            parts = [
                corr_pad.own_masks(_rotated(s, per_day, shifts[start : start + batch]))
                for start in range(0, n_surrogates, batch)
            ]
        else:
            draw = SURROGATES[method]
            parts = [
                corr(draw(s, min(batch, n_surrogates - start), rng))
                for start in range(0, n_surrogates, batch)
            ]
        r_surr = np.concatenate(parts, axis=0)
    lag_s = lags * step.total_seconds()
    table = pd.DataFrame({"lag_s": lag_s, "r": r})
    empty = {
        "best_lag_s": None, "best_lag_refined_s": None, "lag_uncertainty_s": None, "r": None,
        "p_value": None, "r_global_q95": None, "n_surrogates": n_surrogates,
        "bin_s": step.total_seconds(), "n_pairs": 0, "preprocessing": info,
    }  # fmt: skip
    if np.all(np.isnan(r)):
        return {**empty, "table": table}
    best = int(np.nanargmax(np.abs(r)))
    k = int(lags[best])
    a_k, s_k = (a[k:], s[: s.size - k]) if k >= 0 else (a[:k], s[-k:])
    n_pairs = int(np.sum(np.isfinite(a_k) & np.isfinite(s_k)))
    delta, unc = refine_peak(r, best, effective_pairs(a, s, n_pairs))
    out = {
        **empty,
        "best_lag_s": float(lag_s[best]),
        "best_lag_refined_s": float((k + delta) * step.total_seconds()),
        "lag_uncertainty_s": float(unc * step.total_seconds()) if np.isfinite(unc) else None,
        "r": float(r[best]),
        "n_pairs": n_pairs,
    }
    if r_surr is not None:
        max_surr = np.nanmax(np.abs(np.nan_to_num(r_surr, nan=0.0)), axis=1)
        out["p_value"] = float((1 + np.sum(max_surr >= abs(r[best]))) / (1 + n_surrogates))
        out["r_global_q95"] = float(np.quantile(max_surr, 0.95))
        table["r_surrogate_q95"] = np.quantile(np.abs(np.nan_to_num(r_surr)), 0.95, axis=0)
        table["r_global_q95"] = out["r_global_q95"]
    return {**out, "table": table}
