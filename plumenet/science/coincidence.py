"""Event coincidence and superposed epochs of emission onsets and seismic data.

Event coincidence analysis (Donges et al. 2016): precursor and trigger coincidence
rates of emission onsets with seismic events (:func:`coincidence_rates`), their
analytic p-values with total counts (:func:`analytic_p_values`), surrogate p-values that
keep the time of day and the observing pattern (and, on records of two months or more,
each series' clustering), and family-wise p-values over the
whole grid of windows and lags (:func:`coincidence_analysis`); and the superposed-epoch
stack of a series around onsets (:func:`superposed_epoch`). Lag sign as in
:mod:`plumenet.science.correlation`. Methods: docs/catalogue.md, sections 6.2 and 6.3.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from plumenet.science.correlation import bin_step
from plumenet.science.eca_null import (
    CLUSTER_ALPHA,
    DAY_S,
    DayRotation,
    DayShift,
    ObservingMask,
    batch_rates,
    choose_null,
    clustering_p,
    exceedance_p,
    holm,
    min_p_adjusted,
)
from plumenet.timeutil import naive_utc, naive_utc_index, utc_ns

#: Column order of the ECA table (coincidence.csv and the JSON rows).
ECA_COLUMNS: tuple[str, ...] = (
    "window_s", "lag_s", "n_a", "n_b", "k_precursor", "k_trigger",
    "precursor_rate", "trigger_rate",
    "precursor_p_poisson", "precursor_p_poisson_holm", "precursor_p_shuffle",
    "precursor_p_family",
    "trigger_p_poisson", "trigger_p_poisson_holm", "trigger_p_shuffle", "trigger_p_family",
)  # fmt: skip


#: Event times held at once per block of rotation surrogates (8 bytes each, a few copies).
SURROGATE_BLOCK = 4_000_000


def _as_seconds(times: object) -> np.ndarray:
    """Sorted event times in seconds since the epoch (UTC)."""
    return np.sort(utc_ns(times).astype(np.float64) / 1e9)


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


def analytic_p_values(
    a: np.ndarray,
    b: np.ndarray,
    rates: dict[str, float | int],
    *,
    window: float,
    lag: float,
    start: float,
    end: float,
) -> tuple[float, float]:
    """Analytic p-values of Donges et al. (2016) with the total event counts.

    A precursor window lies in ``[start, end - lag]``; under independent events the
    ``N_B`` events of B in that stretch are uniform in it, so one window holds at least
    one of them with the exact probability ``P_p = 1 - (1 - dT/(T - lag))^N_B``, and
    ``K_p ~ Binomial(n_a, P_p)`` over the ``n_a`` counted onsets. Trigger: the same with
    ``N_A`` = onsets in ``[start + lag, end]``. The counts are the totals of the
    stretch, not the edge-filtered ones (those under-count and make p too small).
    """
    t_eff = end - start - lag
    if t_eff <= 0 or window <= 0:
        return float("nan"), float("nan")
    q = max(0.0, 1.0 - window / t_eff)
    n_b_total = int(np.sum((b >= start) & (b <= end - lag)))
    n_a_total = int(np.sum((a >= start + lag) & (a <= end)))
    p_prec = 1.0 - q**n_b_total  # chance one onset's window holds >= 1 event
    p_trig = 1.0 - q**n_a_total
    n_a, n_b = int(rates["n_a"]), int(rates["n_b"])
    kp, kt = int(rates["k_precursor"]), int(rates["k_trigger"])
    pp = float(stats.binom.sf(kp - 1, n_a, p_prec)) if n_a else float("nan")
    pt = float(stats.binom.sf(kt - 1, n_b, p_trig)) if n_b else float("nan")
    return pp, pt


def _seconds_mask(observable: pd.Series | None) -> ObservingMask | None:
    """A boolean series on a regular time grid -> :class:`ObservingMask` (seconds)."""
    if observable is None or len(observable) < 2:
        return None
    index = naive_utc_index(observable.index)
    step = bin_step(index).total_seconds()
    order = np.argsort(index.asi8)
    grid = np.arange(index.asi8[order][0], index.asi8[order][-1] + 1, int(step * 1e9))
    flags = pd.Series(np.asarray(observable, dtype=bool)[order], index=index.asi8[order])
    values = flags.reindex(grid, fill_value=False).to_numpy(dtype=bool)
    return ObservingMask(start=grid[0] / 1e9, step=step, observable=values)


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
    observable: pd.Series | None = None,
    null: str = "auto",
) -> pd.DataFrame:
    """ECA table: one row per (window, lag) with rates, analytic and surrogate p-values.

    ``null`` (:data:`~plumenet.science.eca_null.NULLS`) says how surrogates are made.
    ``rotation`` (:class:`~plumenet.science.eca_null.DayRotation`) turns the events round
    the record by whole days and keeps the onsets: clustering, time of day and the
    observing pattern are all kept, and there are ``days - 1`` surrogates at most.
    ``day-shift`` (:class:`~plumenet.science.eca_null.DayShift`) moves every onset and
    every event to a random day at the same time of day, onsets only to times that were
    ``observable`` (a bool series on the activity bins; default: any time); it keeps no
    clustering. ``auto``: rotation on records of
    :data:`~plumenet.science.eca_null.ROTATION_MIN_DAYS` days or more, and on shorter ones
    when the onsets or the events cluster from day to day
    (:func:`~plumenet.science.eca_null.clustering_p` below
    :data:`~plumenet.science.eca_null.CLUSTER_ALPHA`, against the day-shift draws). Per cell,
    ``*_p_shuffle = (1 + #{rate* >= rate}) / (1 + n)`` over the ``n`` surrogates;
    ``*_p_family`` is the min-p (Westfall-Young) adjustment over the whole grid of
    windows, lags and both rates, ``*_p_poisson_holm`` Holm's adjustment of the analytic
    p-values. The smallest ``*_p_family`` is the one family-wise answer for the grid.
    ``table.attrs`` holds ``eca_null`` (the null used), ``eca_null_reason`` (why, in
    words) and ``n_surrogates``.
    """
    a = _as_seconds(onsets)
    b = _as_seconds(events)
    both = np.concatenate((a, b))
    t0 = naive_utc(start).value / 1e9 if start is not None else (both.min() if both.size else 0.0)
    t1 = naive_utc(end).value / 1e9 if end is not None else (both.max() if both.size else 0.0)
    used = choose_null(null, t0, t1)
    days = f"{(t1 - t0) / DAY_S:.3g}-day record"
    reason = "asked for" if null != "auto" else days
    rng = np.random.default_rng(seed)
    cells = [
        (pd.Timedelta(w).total_seconds(), pd.Timedelta(x).total_seconds())
        for w in windows
        for x in lags
    ]
    rows = []
    for w, lag in cells:
        rates = coincidence_rates(a, b, window=w, lag=lag, start=t0, end=t1)
        pp, pt = analytic_p_values(a, b, rates, window=w, lag=lag, start=t0, end=t1)
        rows.append(
            {"window_s": w, "lag_s": lag, **rates,
             "precursor_p_poisson": pp, "trigger_p_poisson": pt}
        )  # fmt: skip
    table = pd.DataFrame(rows)
    nan = np.full(len(cells), np.nan)
    for col in ("precursor_p_shuffle", "trigger_p_shuffle", "precursor_p_family",
                "trigger_p_family"):  # fmt: skip
        table[col] = nan
    n_surrogates = 0
    if n_shuffles > 0 and a.size and b.size and cells:
        blocks: list[tuple[np.ndarray, np.ndarray]] = []
        if used == "day-shift":
            shifted = (
                DayShift(a, t0, t1, _seconds_mask(observable)).draw(rng, n_shuffles),
                DayShift(b, t0, t1).draw(rng, n_shuffles),
            )
            blocks.append(shifted)
            if null == "auto" and t1 - t0 >= 2 * DAY_S:
                p_a, p_b = (clustering_p(x, sx, t0) for x, sx in zip((a, b), shifted, strict=True))
                clusters = f"day-to-day clustering p: onsets {p_a:.3g}, events {p_b:.3g}"
                reason = f"{days}; {clusters}"
                if min(p_a, p_b) < CLUSTER_ALPHA:  # the day shift would scatter the clusters
                    used, blocks = "rotation", []
        if used == "rotation":  # the onsets stay as seen; the events turn round the record
            rotation = DayRotation(b, t0, t1)
            shifts = rotation.shifts(rng, n_shuffles)
            # a decade of events x 999 shifts would not fit at once: a few M times a block
            step = max(1, SURROGATE_BLOCK // (a.size + b.size))
            for i in range(0, shifts.size, step):
                sb = rotation.turned(shifts[i : i + step])
                blocks.append((np.broadcast_to(a, (sb.shape[0], a.size)), sb))
        parts = []
        for sa, sb in blocks:
            part = np.empty((sb.shape[0], 2 * len(cells)))
            for j, (w, lag) in enumerate(cells):
                part[:, j], part[:, len(cells) + j] = batch_rates(
                    sa, sb, window=w, lag=lag, start=t0, end=t1
                )
            parts.append(part)
        surr = np.vstack(parts)
        n_surrogates = surr.shape[0]
        observed = np.concatenate(
            (table["precursor_rate"].to_numpy(float), table["trigger_rate"].to_numpy(float))
        )
        raw = exceedance_p(observed, surr)
        family = min_p_adjusted(observed, surr)
        table["precursor_p_shuffle"], table["trigger_p_shuffle"] = np.split(raw, 2)
        table["precursor_p_family"], table["trigger_p_family"] = np.split(family, 2)
    holm_p = holm(np.concatenate((table["precursor_p_poisson"], table["trigger_p_poisson"])))
    table["precursor_p_poisson_holm"], table["trigger_p_poisson_holm"] = np.split(holm_p, 2)
    table = table[[c for c in ECA_COLUMNS if c in table.columns]]
    table.attrs.update(eca_null=used, n_surrogates=n_surrogates, eca_null_reason=reason)
    return table


def family_p_value(table: pd.DataFrame) -> float | None:
    """The one family-wise p of an ECA table: its smallest min-p adjusted p (None if none)."""
    values = table[["precursor_p_family", "trigger_p_family"]].to_numpy(dtype=float)
    return float(np.nanmin(values)) if np.isfinite(values).any() else None


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
    s.index = naive_utc_index(s.index)
    s = s.sort_index()
    step = bin_step(s.index)
    k0 = int(pd.Timedelta(before) // step)
    k1 = int(pd.Timedelta(after) // step)
    offsets = np.arange(-k0, k1 + 1)
    grid_start = s.index[0]
    regular = s.resample(step, origin=grid_start).mean()
    vals = regular.to_numpy()
    t_on = utc_ns(onsets)
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
