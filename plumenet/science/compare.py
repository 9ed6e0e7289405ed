"""Comparison of webcam activity with seismic data (pure functions, no I/O).

Sign convention everywhere: a lag is in seconds and POSITIVE when the seismic
signal LEADS the emissions (seismic at ``t - lag`` goes with activity at ``t``).
Methods and formulas: docs/catalogue.md.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

log = logging.getLogger(__name__)

#: Fewest overlapping (finite) pairs for a correlation at one lag to be reported.
MIN_PAIRS = 10


def _naive_utc(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns")


def activity_series(
    activity: xr.Dataset | pd.DataFrame | pd.Series,
    *,
    cls: str = "any_emission",
    variable: str = "present_share",
) -> pd.Series:
    """One activity series (naive-UTC index) from
    :func:`plumenet.science.activity.bin_activity` output.

    NaN bins (nothing observable) stay NaN: they are left out of every statistic.
    """
    if isinstance(activity, pd.Series):
        s = activity.astype(np.float64)
    elif isinstance(activity, xr.Dataset):
        s = activity[variable].sel({"class": cls}).to_series().astype(np.float64)
    else:
        df = activity.set_index("time") if "time" in activity.columns else activity
        col = f"{variable}_{cls}" if f"{variable}_{cls}" in df.columns else cls
        s = df[col].astype(np.float64)
    s.index = _naive_utc(s.index)
    s.name = f"{variable}_{cls}"
    return s.sort_index()


def _step(index: pd.DatetimeIndex) -> pd.Timedelta:
    if len(index) < 2:
        raise ValueError("need at least two time bins to compare series")
    return pd.Timedelta(int(np.median(np.diff(index.asi8))), unit="ns")


def align_rsam(rsam: pd.Series, index: pd.DatetimeIndex, *, log_scale: bool = True) -> pd.Series:
    """RSAM averaged into the activity bins (bin = [t, t + step)), log10 by default.

    Non-positive RSAM has no logarithm and becomes NaN.
    """
    step = _step(index)
    r = rsam.astype(np.float64).copy()
    r.index = _naive_utc(r.index)
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
        from scipy import fft

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
        from scipy import fft

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
        sy, say = self.sums(y, 2)
        (syy,) = self.sums(y * y, 1)
        cnt, sa = self.cnt, self.sa
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = say - sa * sy / cnt
            va = self.saa - sa * sa / cnt
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


def phase_surrogates(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` phase-randomised copies of ``x`` (same power spectrum, so same autocorrelation).

    NaNs are filled by linear interpolation before the FFT; callers re-apply the mask.
    """
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    if not ok.any():
        return np.full((n, x.size), np.nan)
    filled = np.interp(np.arange(x.size), np.flatnonzero(ok), x[ok])
    mean = filled.mean()
    spec = np.fft.rfft(filled - mean)
    phases = rng.uniform(0, 2 * np.pi, (n, spec.size))
    phases[:, 0] = 0.0
    if x.size % 2 == 0:
        phases[:, -1] = 0.0  # Nyquist stays real
    return np.fft.irfft(spec * np.exp(1j * phases), x.size, axis=-1) + mean


def cross_correlation(
    activity: pd.Series,
    seismic: pd.Series,
    *,
    max_lag: str = "72h",
    n_surrogates: int = 499,
    seed: int | None = 0,
) -> dict[str, object]:
    """Lagged correlation of activity with a seismic series on the same bins.

    The p-value is for the largest |r| over all lags (the lag search is part of the
    test): the share of phase-randomised seismic surrogates whose largest |r| is at
    least as large, ``(1 + #) / (1 + n_surrogates)``. Lags are searched up to
    ``max_lag`` but never beyond a quarter of the record (the usual N/4 rule): at longer
    lags too few pairs overlap and a spurious peak can win.
    """
    index = _naive_utc(activity.index)
    seis = seismic.copy()
    seis.index = _naive_utc(seis.index)
    seis = seis.reindex(index)
    step = _step(index)
    k_max = int(pd.Timedelta(max_lag) // step)
    k_max = max(0, min(k_max, len(index) // 4, len(index) - MIN_PAIRS))
    a = activity.to_numpy(dtype=np.float64, na_value=np.nan)
    s = seis.to_numpy(dtype=np.float64, na_value=np.nan)
    rng = np.random.default_rng(seed)
    corr = _Correlator(a, s, k_max)
    lags = np.arange(-k_max, k_max + 1)
    r = corr(np.nan_to_num(s))
    r_surr = None
    if n_surrogates > 0:
        # Batches bound memory for long series.
        batch = max(1, int(4_000_000 // max(a.size, 1)))
        parts = [
            corr(phase_surrogates(s, min(batch, n_surrogates - start), rng))
            for start in range(0, n_surrogates, batch)
        ]
        r_surr = np.concatenate(parts, axis=0)
    lag_s = lags * step.total_seconds()
    table = pd.DataFrame({"lag_s": lag_s, "r": r})
    if np.all(np.isnan(r)):
        return {
            "best_lag_s": None, "r": None, "p_value": None, "n_surrogates": n_surrogates,
            "bin_s": step.total_seconds(), "n_pairs": 0, "table": table,
        }  # fmt: skip
    best = int(np.nanargmax(np.abs(r)))
    p_value = None
    if r_surr is not None:
        max_surr = np.nanmax(np.abs(np.nan_to_num(r_surr, nan=0.0)), axis=1)
        p_value = float((1 + np.sum(max_surr >= abs(r[best]))) / (1 + n_surrogates))
        table["r_surrogate_q95"] = np.nanquantile(np.abs(r_surr), 0.95, axis=0)
    k = int(lags[best])
    a_k, s_k = (a[k:], s[: s.size - k]) if k >= 0 else (a[:k], s[-k:])
    n_pairs = int(np.sum(np.isfinite(a_k) & np.isfinite(s_k)))
    return {
        "best_lag_s": float(lag_s[best]),
        "r": float(r[best]),
        "p_value": p_value,
        "n_surrogates": n_surrogates,
        "bin_s": step.total_seconds(),
        "n_pairs": n_pairs,
        "table": table,
    }


# --- event coincidence analysis (Donges et al. 2016) -------------------------


def _as_seconds(times: object) -> np.ndarray:
    idx = _naive_utc(pd.DatetimeIndex(times))
    return np.sort(idx.asi8.astype(np.float64) / 1e9)


def _count_in(sorted_b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Number of b with lo <= b <= hi (elementwise over lo/hi of any shape)."""
    return np.searchsorted(sorted_b, hi, side="right") - np.searchsorted(sorted_b, lo, side="left")


def coincidence_rates(
    a: np.ndarray, b: np.ndarray, *, window: float, lag: float, start: float, end: float
) -> dict[str, float | int]:
    """Precursor and trigger coincidence of A (emission onsets) and B (seismic events).

    Precursor: share of A events with at least one B in ``[t_A - lag - window, t_A - lag]``.
    Trigger: share of B events with at least one A in ``[t_B + lag, t_B + lag + window]``.
    Edge effects: only A events whose window starts at or after ``start`` and only
    B events whose window ends at or before ``end`` are counted (times in seconds).
    """
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    a_ok = a[(a - lag - window >= start) & (a <= end)]
    b_ok = b[(b >= start) & (b + lag + window <= end)]
    kp = int(np.sum(_count_in(b, a_ok - lag - window, a_ok - lag) > 0))
    kt = int(np.sum(_count_in(a, b_ok + lag, b_ok + lag + window) > 0))
    return {
        "n_a": int(a_ok.size),
        "n_b": int(b_ok.size),
        "k_precursor": kp,
        "k_trigger": kt,
        "precursor_rate": kp / a_ok.size if a_ok.size else float("nan"),
        "trigger_rate": kt / b_ok.size if b_ok.size else float("nan"),
    }


def poisson_p_values(
    n_a: int, n_b: int, k_precursor: int, k_trigger: int, *, window: float, lag: float, span: float
) -> tuple[float, float]:
    """Analytic p-values of Donges et al. (2016), eqs. for independent Poisson processes.

    P(K_p >= k) = sum_{K=k}^{N_A} C(N_A, K) (1 - (1 - dT/(T - tau))^N_B)^K
                  ((1 - dT/(T - tau))^N_B)^(N_A - K), and the same with A, B swapped
    for the trigger rate.
    """
    t_eff = span - lag
    if t_eff <= 0 or window <= 0:
        return float("nan"), float("nan")
    q = max(0.0, 1.0 - window / t_eff)
    p_prec = 1.0 - q**n_b  # chance one A has >= 1 B in its window
    p_trig = 1.0 - q**n_a
    pp = float(stats.binom.sf(k_precursor - 1, n_a, p_prec)) if n_a else float("nan")
    pt = float(stats.binom.sf(k_trigger - 1, n_b, p_trig)) if n_b else float("nan")
    return pp, pt


def coincidence_analysis(
    onsets: object,
    events: object,
    *,
    windows: Sequence[str] = ("1h", "6h", "1D"),
    lags: Sequence[str] = ("0h", "6h", "1D"),
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    n_shuffles: int = 999,
    seed: int | None = 0,
) -> pd.DataFrame:
    """ECA table: one row per (window, lag) with rates, Poisson and shuffle p-values.

    Shuffle p-values redraw the times of the counted events uniformly in their
    admissible range (A for the precursor rate, B for the trigger rate), keeping the
    other series fixed: ``(1 + #{K* >= K}) / (1 + n_shuffles)``.
    """
    a = _as_seconds(onsets)
    b = _as_seconds(events)
    both = np.concatenate((a, b))
    t0 = _as_seconds([start])[0] if start is not None else (both.min() if both.size else 0.0)
    t1 = _as_seconds([end])[0] if end is not None else (both.max() if both.size else 0.0)
    rng = np.random.default_rng(seed)
    rows = []
    for w_text in windows:
        for l_text in lags:
            w = pd.Timedelta(w_text).total_seconds()
            lag = pd.Timedelta(l_text).total_seconds()
            rates = coincidence_rates(a, b, window=w, lag=lag, start=t0, end=t1)
            pp, pt = poisson_p_values(
                rates["n_a"], rates["n_b"], rates["k_precursor"], rates["k_trigger"],
                window=w, lag=lag, span=t1 - t0,
            )  # fmt: skip
            sp = st = float("nan")
            if n_shuffles > 0 and rates["n_a"] and b.size:
                ra = rng.uniform(t0 + lag + w, t1, (n_shuffles, rates["n_a"]))
                kp = np.sum(_count_in(b, ra - lag - w, ra - lag) > 0, axis=1)
                sp = float((1 + np.sum(kp >= rates["k_precursor"])) / (1 + n_shuffles))
            if n_shuffles > 0 and rates["n_b"] and a.size:
                rb = rng.uniform(t0, t1 - lag - w, (n_shuffles, rates["n_b"]))
                kt = np.sum(_count_in(a, rb + lag, rb + lag + w) > 0, axis=1)
                st = float((1 + np.sum(kt >= rates["k_trigger"])) / (1 + n_shuffles))
            rows.append(
                {
                    "window_s": w,
                    "lag_s": lag,
                    **rates,
                    "precursor_p_poisson": pp,
                    "precursor_p_shuffle": sp,
                    "trigger_p_poisson": pt,
                    "trigger_p_shuffle": st,
                }
            )
    return pd.DataFrame(rows)


# --- superposed epochs -------------------------------------------------------


def superposed_epoch(
    series: pd.Series,
    onsets: object,
    *,
    before: str = "2D",
    after: str = "2D",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Values of ``series`` (e.g. log10 RSAM) around each onset, stacked.

    Offsets are multiples of the series step; an onset maps to the nearest sample.
    Returns the summary table (offset_s, n, mean, median, q25, q75) and the
    epochs matrix (onsets x offsets, NaN outside the record).
    """
    s = series.astype(np.float64).copy()
    s.index = _naive_utc(s.index)
    s = s.sort_index()
    step = _step(s.index)
    k0 = int(pd.Timedelta(before) // step)
    k1 = int(pd.Timedelta(after) // step)
    offsets = np.arange(-k0, k1 + 1)
    grid_start = s.index[0]
    regular = s.resample(step, origin=grid_start).mean()
    vals = regular.to_numpy()
    t_on = _naive_utc(pd.DatetimeIndex(onsets)).asi8
    pos = np.rint((t_on - regular.index[0].value) / step.value).astype(np.int64)
    idx = pos[:, None] + offsets[None, :]
    inside = (idx >= 0) & (idx < vals.size)
    epochs = np.where(inside, vals[np.clip(idx, 0, max(vals.size - 1, 0))], np.nan)
    counts = np.sum(np.isfinite(epochs), axis=0)
    with warnings.catch_warnings():  # all-NaN offsets are expected at the record's edges
        warnings.simplefilter("ignore", RuntimeWarning)
        table = pd.DataFrame(
            {
                "offset_s": offsets * step.total_seconds(),
                "n": counts,
                "mean": np.nanmean(epochs, axis=0) if epochs.size else np.nan,
                "median": np.nanmedian(epochs, axis=0) if epochs.size else np.nan,
                "q25": np.nanquantile(epochs, 0.25, axis=0) if epochs.size else np.nan,
                "q75": np.nanquantile(epochs, 0.75, axis=0) if epochs.size else np.nan,
            }
        )
    return table, epochs


# --- everything --------------------------------------------------------------


def compare(
    activity: xr.Dataset | pd.DataFrame | pd.Series,
    rsam: pd.Series | None,
    events: pd.DataFrame | None,
    episodes: pd.DataFrame | None,
    *,
    cls: str = "any_emission",
    variable: str = "present_share",
    max_lag: str = "72h",
    lags: Sequence[str] = ("0h", "6h", "1D"),
    windows: Sequence[str] = ("1h", "6h", "1D"),
    n_surrogates: int = 499,
    n_shuffles: int = 999,
    epoch_before: str = "2D",
    epoch_after: str = "2D",
    seed: int | None = 0,
) -> dict[str, object]:
    """All comparisons for one camera.

    Returns a dict with JSON-ready ``xcorr``, ``coincidence`` (list of rows),
    ``epoch`` summaries and ``settings``, plus ``tables`` (DataFrames: xcorr,
    coincidence, epoch) for CSV and figures. Parts whose input is missing are None.
    """
    act = activity_series(activity, cls=cls, variable=variable)
    out: dict[str, object] = {
        "settings": {
            "activity": act.name,
            "lag_sign": "positive lag = seismic leads emissions",
            "max_lag_s": pd.Timedelta(max_lag).total_seconds(),
            "n_surrogates": n_surrogates,
            "n_shuffles": n_shuffles,
            "eca_windows_s": [pd.Timedelta(w).total_seconds() for w in windows],
            "eca_lags_s": [pd.Timedelta(x).total_seconds() for x in lags],
            "episode_class": cls,
            "seed": seed,
        },
        "xcorr": None,
        "coincidence": None,
        "epoch": None,
    }
    tables: dict[str, pd.DataFrame] = {}
    onsets = pd.DatetimeIndex([])
    if episodes is not None and len(episodes):
        onsets = pd.DatetimeIndex(episodes.loc[episodes["class"] == cls, "onset"])
    start = act.index[0] if len(act) else None
    end = act.index[-1] + _step(act.index) if len(act) > 1 else None
    if rsam is not None and len(rsam):
        log_rsam = align_rsam(rsam, act.index)
        xc = cross_correlation(act, log_rsam, max_lag=max_lag, n_surrogates=n_surrogates, seed=seed)
        tables["xcorr"] = xc.pop("table")
        out["xcorr"] = xc
        r = rsam.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_native = np.log10(r.where(r > 0))
        epoch_table, _ = superposed_epoch(
            log_native, onsets, before=epoch_before, after=epoch_after
        )
        tables["epoch"] = epoch_table
        base = epoch_table.loc[epoch_table["offset_s"] < 0, "mean"]
        post = epoch_table.loc[epoch_table["offset_s"] >= 0, "mean"]
        out["epoch"] = {
            "n_onsets": len(onsets),
            "before_s": pd.Timedelta(epoch_before).total_seconds(),
            "after_s": pd.Timedelta(epoch_after).total_seconds(),
            "mean_log10_rsam_before": float(base.mean()) if base.notna().any() else None,
            "mean_log10_rsam_after": float(post.mean()) if post.notna().any() else None,
        }
    if events is not None:
        eca = coincidence_analysis(
            onsets,
            pd.DatetimeIndex(events["time"]),
            windows=windows,
            lags=lags,
            start=start,
            end=end,
            n_shuffles=n_shuffles,
            seed=seed,
        )
        tables["coincidence"] = eca
        out["coincidence"] = eca.to_dict(orient="records")
    out["tables"] = tables
    return out


# --- edge: store + seismic files in, comparison files out --------------------------------

_COMPARE_KEYS = (
    "cls", "variable", "max_lag", "lags", "windows", "n_surrogates", "n_shuffles",
    "epoch_before", "epoch_after", "seed",
)  # fmt: skip


def run_compare(
    config: object,
    camera: str,
    rsam: str | Path | pd.Series | None = None,
    events: str | Path | pd.DataFrame | None = None,
    out: str | Path = "comparison",
    *,
    start: object = None,
    end: object = None,
    freq: str = "1h",
    figures: bool = True,
    **params: object,
) -> dict[str, str]:
    """Compare one camera's activity (recomputed from the store) with seismic data.

    ``rsam``: a ``time,value`` CSV, a miniSEED file, or a Series; ``events``: QuakeML,
    FDSN text or CSV, or a DataFrame with ``time``. ``params``: :func:`compare` options
    and catalogue thresholds (:class:`plumenet.science.activity.EpisodeParams` /
    ``ObservabilityParams`` fields). Writes ``comparison.json``, ``xcorr.csv``,
    ``coincidence.csv``, ``epoch.csv`` and PNGs under ``out``; returns name -> path.
    """
    from plumenet.config import Config, load_config
    from plumenet.errors import ConfigError
    from plumenet.science import activity as act_mod
    from storage import catalogue as files
    from storage import seismic

    if rsam is None and events is None:
        raise ConfigError("nothing to compare with — pass an RSAM file (--rsam) and/or events")
    cfg = config if isinstance(config, Config) else load_config(config)  # type: ignore[arg-type]
    cfg.camera(camera)
    cmp_params = {k: v for k, v in params.items() if k in _COMPARE_KEYS}
    ep, ob = act_mod.split_params({k: v for k, v in params.items() if k not in _COMPARE_KEYS})
    rsam_series = rsam if isinstance(rsam, pd.Series) or rsam is None else seismic.read_rsam(rsam)
    event_table = (
        events if isinstance(events, pd.DataFrame) or events is None
        else seismic.read_events(events)
    )  # fmt: skip
    ds = act_mod.load_camera(
        cfg.store, camera, storage_options=cfg.storage_options, start=start, end=end
    )
    res = act_mod.catalogue(
        ds, camera=camera, episode_params=ep, observability_params=ob, freqs=(freq,)
    )
    activity = res[f"activity_{freq.lower()}"]
    result = compare(activity, rsam_series, event_table, res["episodes"], **cmp_params)
    tables = result.pop("tables")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "camera": camera,
        "activity_bins": freq,
        "n_episodes": int((res["episodes"]["class"] == result["settings"]["episode_class"]).sum()),
        **result,
    }
    written = {"comparison_json": str(files.write_json(out_dir / "comparison.json", payload))}
    for name, table in tables.items():
        path = out_dir / f"{name}.csv"
        table.to_csv(path, index=False)
        written[f"{name}_csv"] = str(path)
    if figures:
        from plumenet.science import figures as fig

        if "xcorr" in tables:
            best = result["xcorr"]["best_lag_s"]  # type: ignore[index]
            written["xcorr_png"] = str(
                fig.plot_xcorr(tables["xcorr"], out_dir / "xcorr.png", best_lag_s=best)
            )
        if "epoch" in tables:
            written["epoch_png"] = str(fig.plot_epoch(tables["epoch"], out_dir / "epoch.png"))
        fr = act_mod.activity_fractions(ds, res["observable"].values)
        written["timeline_png"] = str(
            fig.plot_timeline(
                fr, res["episodes"], out_dir / "timeline.png", rsam=rsam_series, title=camera
            )
        )
    log.info("camera %s: comparison written to %s", camera, out_dir)
    return written
