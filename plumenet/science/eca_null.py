"""Null models and multiple-testing control for event coincidence analysis.

Surrogate event series that keep the observing pattern: :class:`DayRotation` turns the
seismic events round the record by whole days and keeps the onsets, so each series keeps
its clustering, its time of day and (the onsets) its observing pattern exactly;
:class:`DayShift` moves every event to a random day at its time of day (admissible and,
for emission onsets, observable), which keeps no clustering. :func:`choose_null` picks
one by the record's length, and :func:`clustering_p` tells when a short record clusters
too much for the day shift. Coincidence counts of many surrogate series at once
(:func:`batch_rates`), and family-wise answers for a grid of tests: the Westfall-Young
single-step min-p adjustment over surrogates (:func:`min_p_adjusted`) and Holm's
step-down adjustment of analytic p-values (:func:`holm`). Methods: docs/catalogue.md,
section 6.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: One day in seconds: the period the day-shift surrogates keep.
DAY_S = 86_400.0
#: Whole days a record needs before ``null="auto"`` turns the events round it
#: (:class:`DayRotation`): at least 59 surrogates and p-values down to 1/60; shorter
#: records keep the finer p-values of :class:`DayShift` (docs/catalogue.md, section 6.2).
ROTATION_MIN_DAYS = 60
#: The null models of :func:`plumenet.science.coincidence.coincidence_analysis`.
NULLS = ("auto", "rotation", "day-shift")
#: On a record shorter than :data:`ROTATION_MIN_DAYS`, ``auto`` still turns to the
#: rotation when either series clusters from day to day at this level
#: (:func:`clustering_p`): the day shift would scatter the clusters.
CLUSTER_ALPHA = 0.05


@dataclass(frozen=True)
class ObservingMask:
    """When emissions could be seen: ``observable[i]`` covers ``[start + i*step, +step)`` (s)."""

    start: float
    step: float
    observable: np.ndarray

    def __call__(self, times: np.ndarray) -> np.ndarray:
        """Bool per time: inside the grid and observable."""
        pos = np.floor((times - self.start) / self.step)
        inside = (pos >= 0) & (pos < self.observable.size)
        idx = np.clip(pos, 0, max(self.observable.size - 1, 0)).astype(np.int64)
        return inside & self.observable[idx]


def record_days(lo: float, hi: float) -> int:
    """Whole days (rounded up) of the record ``[lo, hi]`` (seconds)."""
    return max(0, int(np.ceil((hi - lo) / DAY_S - 1e-9)))


def choose_null(null: str, lo: float, hi: float) -> str:
    """``rotation`` or ``day-shift`` for ``null`` on the record ``[lo, hi]``.

    ``auto`` is rotation from :data:`ROTATION_MIN_DAYS` whole days on, else the day shift
    (which has p-values down to ``1/(1 + n_shuffles)`` on a short record, but keeps no
    clustering). An explicit rotation needs a record of at least 2 days.
    """
    if null not in NULLS:
        raise ValueError(f"unknown ECA null {null!r} — use one of {', '.join(NULLS)}")
    days = record_days(lo, hi)
    if null == "auto":
        return "rotation" if days >= ROTATION_MIN_DAYS else "day-shift"
    if null == "rotation" and hi - lo < 2 * DAY_S:
        raise ValueError(
            f"the record spans {(hi - lo) / DAY_S:.2f} days: turning events round it needs "
            "at least 2 — use the day-shift null"
        )
    return null


def daily_count_spread(rows: np.ndarray, lo: float) -> np.ndarray:
    """Sum of squared per-day event counts of each row (events x days from ``lo``).

    With the number of events fixed, this grows with the variance of the daily counts:
    large when events come in clusters of hours to days.
    """
    rows = np.atleast_2d(rows)
    if rows.shape[1] == 0:
        return np.zeros(rows.shape[0])
    day = np.floor((rows - lo) / DAY_S).astype(np.int64)
    day -= day.min()
    width = int(day.max()) + 1
    flat = (day + width * np.arange(rows.shape[0])[:, None]).ravel()
    counts = np.bincount(flat, minlength=width * rows.shape[0]).reshape(rows.shape[0], width)
    return (counts.astype(np.float64) ** 2).sum(axis=1)


def clustering_p(times: np.ndarray, day_shifted: np.ndarray, lo: float) -> float:
    """p of "no clustering from day to day" for ``times`` against its day-shift
    surrogates (:class:`DayShift`, the null that keeps no clustering):
    ``(1 + #{spread* >= spread}) / (1 + n)`` with :func:`daily_count_spread`."""
    if np.asarray(times).size < 3 or day_shifted.shape[0] == 0:
        return 1.0
    observed = daily_count_spread(np.sort(times)[None, :], lo)[0]
    spread = daily_count_spread(day_shifted, lo)
    return float((1 + np.sum(spread >= observed - 1e-9)) / (1 + spread.size))


class DayRotation:
    """Surrogates of an event series: the whole series turned round the record by whole days.

    Event times are taken modulo the record's length in whole days (rounded up) and
    shifted by ``k`` days, ``k`` in ``1 .. days - 1``: gaps between events, bursts and
    swarms, the time of day and the day/night rate are all kept (only the one seam where
    the record wraps round is cut). Against a series kept as it is (the onsets, with their
    observing pattern), this is the classic circular-shift test of independence: exact
    under a null where either series is stationary from day to day, whatever its
    clustering. There are only ``days - 1`` such surrogates, so p-values go down to
    ``1/days``.
    """

    def __init__(self, times: np.ndarray, lo: float, hi: float) -> None:
        self.times = np.asarray(times, dtype=np.float64)
        self.lo = float(lo)
        self.days = record_days(lo, hi)
        self.period = self.days * DAY_S
        # Events outside the record never count; they stay put instead of wrapping in.
        self.inside = (self.times >= lo) & (self.times <= hi)

    @property
    def n_shifts(self) -> int:
        """How many distinct surrogates there are (``days - 1``)."""
        return max(self.days - 1, 0)

    def shifts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Shifts in days: every one when ``n`` allows (then ``rng`` is not used), else
        ``n`` drawn without replacement."""
        every = np.arange(1, self.n_shifts + 1)
        if n >= every.size:
            return every
        return np.sort(rng.choice(every, size=n, replace=False))

    def turned(self, k: np.ndarray) -> np.ndarray:
        """The series turned by each of ``k`` days: shape (len(k), events), rows sorted."""
        k = np.asarray(k)
        if self.times.size == 0 or k.size == 0:
            return np.empty((k.size, self.times.size))
        turned = np.mod(self.times[None, :] - self.lo + DAY_S * k[:, None], self.period)
        out = np.where(self.inside[None, :], turned + self.lo, self.times[None, :])
        return np.sort(out, axis=1)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """At most ``n`` surrogate series, shape (min(n, days - 1), events), rows sorted."""
        return self.turned(self.shifts(rng, n))


class DayShift:
    """Surrogates of an event series: each event keeps its time of day, its day is redrawn.

    The new day is uniform over the days on which ``time of day + day`` lies in
    ``[lo, hi]`` and, with a ``mask``, is observable. Under a null of events whose rate
    depends on the time of day (and on observability) but not on the date, the surrogates
    have the same distribution as the data, so the test keeps the day/night structure of
    both series. An event outside ``[lo, hi]`` or not observable stays where it is.
    """

    def __init__(
        self, times: np.ndarray, lo: float, hi: float, mask: ObservingMask | None = None
    ) -> None:
        self.times = np.asarray(times, dtype=np.float64)
        base = np.floor(lo / DAY_S) * DAY_S
        tod = np.mod(self.times - base, DAY_S)
        n_days = int(np.ceil((hi - base) / DAY_S)) + 1
        cand = base + tod[:, None] + DAY_S * np.arange(n_days)[None, :]
        valid = (cand >= lo) & (cand <= hi)
        if mask is not None:
            valid &= mask(cand)
        own = np.rint((self.times - base - tod) / DAY_S).astype(np.int64)
        stuck = ~valid.any(axis=1) | (own < 0) | (own >= n_days)
        stuck |= ~valid[np.arange(self.times.size), np.clip(own, 0, n_days - 1)]
        self.cand = cand
        self.valid = valid & ~stuck[:, None]
        self.stuck = stuck
        self.count = self.valid.sum(axis=1)
        width = n_days + 1  # cumulative counts, offset so that rows never overlap
        rows = width * np.arange(self.times.size)[:, None]
        self.cum_flat = (np.cumsum(self.valid, axis=1) + rows).ravel()
        self.width = width
        self.n_days = n_days

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` surrogate series, shape (n, events), each row sorted."""
        n_ev = self.times.size
        if n_ev == 0:
            return np.empty((n, 0))
        k = np.floor(rng.uniform(size=(n, n_ev)) * np.maximum(self.count, 1)).astype(np.int64) + 1
        rows = np.arange(n_ev)[None, :]
        flat = np.searchsorted(self.cum_flat, k + self.width * rows, side="left")
        day = flat - rows * self.n_days
        out = self.cand[rows, np.clip(day, 0, self.n_days - 1)]
        out = np.where(self.stuck[None, :], self.times[None, :], out)
        return np.sort(out, axis=1)


def _count_rows(sorted_rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row r: number of ``sorted_rows[r]`` in ``[lo[r, i], hi[r, i]]``.

    Rows are offset by a constant larger than any time span, so one searchsorted over
    the flattened array serves every row.
    """
    m = sorted_rows.shape[0]
    if sorted_rows.shape[1] == 0:
        return np.zeros(lo.shape, dtype=np.int64)
    span = max(np.ptp(sorted_rows), np.ptp(lo), np.ptp(hi), 1.0)
    ref = min(sorted_rows.min(), lo.min())
    big = 4.0 * (span + abs(hi.max() - ref) + 1.0)
    off = big * np.arange(m)[:, None]
    flat = (sorted_rows - ref + off).ravel()
    right = np.searchsorted(flat, (hi - ref + off).ravel(), side="right")
    left = np.searchsorted(flat, (lo - ref + off).ravel(), side="left")
    return (right - left).reshape(lo.shape)


def batch_rates(
    a: np.ndarray, b: np.ndarray, *, window: float, lag: float, start: float, end: float
) -> tuple[np.ndarray, np.ndarray]:
    """Precursor and trigger rates of many series pairs (rows of ``a`` and ``b``, sorted).

    Same definitions and edge rules as
    :func:`plumenet.science.coincidence.coincidence_rates`; NaN where no event counts.
    """
    a_ok = (a - lag - window >= start) & (a <= end)
    b_ok = (b >= start) & (b + lag + window <= end)
    hit_p = (_count_rows(b, a - lag - window, a - lag) > 0) & a_ok
    hit_t = (_count_rows(a, b + lag, b + lag + window) > 0) & b_ok
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_p = hit_p.sum(axis=1) / a_ok.sum(axis=1)
        rate_t = hit_t.sum(axis=1) / b_ok.sum(axis=1)
    return rate_p, rate_t


def exceedance_p(observed: np.ndarray, surrogate: np.ndarray) -> np.ndarray:
    """Per column: ``(1 + #{surrogate >= observed}) / (1 + n)``; NaN surrogates count as >=.

    ``observed`` (cells,), ``surrogate`` (n, cells). NaN where ``observed`` is NaN.
    """
    n = surrogate.shape[0]
    ge = (surrogate >= observed[None, :]) | np.isnan(surrogate)
    p = (1.0 + ge.sum(axis=0)) / (1.0 + n)
    return np.where(np.isnan(observed), np.nan, p)


def min_p_adjusted(observed: np.ndarray, surrogate: np.ndarray) -> np.ndarray:
    """Westfall-Young single-step min-p adjusted p-values of a grid of one-sided tests.

    Large statistics are significant. The observed grid is one member of the
    ``n + 1`` exchangeable grids under the null; each member's cells get their p among
    all members, its smallest p is its min-p, and a cell's adjusted p is the share of
    members whose min-p is at most that cell's raw p. Controls the family-wise error
    rate for any dependence between the cells. ``observed`` (cells,), ``surrogate``
    (n, cells); NaN cells are left out (and NaN in the result).
    """
    ok = ~np.isnan(observed)
    out = np.full(observed.shape, np.nan)
    if not ok.any():
        return out
    members = np.vstack((observed[None, ok], surrogate[:, ok]))  # (n + 1, cells)
    members = np.where(np.isnan(members), -np.inf, members)
    total = members.shape[0]
    ordered = np.sort(members, axis=0)
    # p of each member in each cell: share of members with a statistic >= its own.
    p = np.empty_like(members)
    for j in range(members.shape[1]):
        below = np.searchsorted(ordered[:, j], members[:, j], side="left")
        p[:, j] = (total - below) / total
    min_p = p.min(axis=1)
    out[ok] = np.searchsorted(np.sort(min_p), p[0], side="right") / total
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate); NaN entries left out."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out
