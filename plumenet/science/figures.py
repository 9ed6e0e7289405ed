"""PNG figures of the catalogue and the seismic comparison.

Uses matplotlib's object API (``Figure``, no pyplot state), so it is safe in worker
threads and never opens a window. Each function draws one file and returns its path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from plumenet.classes import CLASS_COLORS, EMISSION_CLASSES
from plumenet.science.plume import HEIGHT_KINDS, has_metres, height_column, top_row_column
from plumenet.timeutil import naive_utc_index

log = logging.getLogger(__name__)

#: Most points drawn per line; longer series are block-averaged (NaN-aware) first.
MAX_POINTS = 20_000


def class_color(name: str) -> tuple[float, float, float]:
    """Plot colour of a class; near-white classes are darkened to show on white paper."""
    if name not in CLASS_COLORS:
        return (0.55, 0.1, 0.1)
    rgb = np.array(CLASS_COLORS[name], dtype=float) / 255.0
    if rgb.mean() > 0.8:  # white gas on white paper: draw it steel blue
        rgb = np.array([0.4, 0.55, 0.8])
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def _decimate(df: pd.DataFrame, max_points: int, how: str = "mean") -> pd.DataFrame:
    if len(df) <= max_points:
        return df
    k = int(np.ceil(len(df) / max_points))
    groups = np.arange(len(df)) // k
    out = df.groupby(groups).agg(how)
    out.index = df.index[::k][: len(out)]
    return out


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of ``mask``."""
    m = np.concatenate(([0], mask.astype(np.int8), [0]))
    d = np.diff(m)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _bars(times: pd.DatetimeIndex, mask: np.ndarray) -> list[tuple[float, float]]:
    """(start, width) in matplotlib date units of each True run on the time grid."""
    if len(times) == 0:
        return []
    x = date2num(times.to_pydatetime())
    step = float(np.median(np.diff(x))) if x.size > 1 else 1 / 24
    starts, ends = _runs(mask)
    return [(x[s], x[e - 1] - x[s] + step) for s, e in zip(starts, ends, strict=True)]


def _episode_bars(episodes: pd.DataFrame, cls: str) -> list[tuple[float, float]]:
    sel = episodes[episodes["class"] == cls]
    if sel.empty:
        return []
    on = date2num(naive_utc_index(sel["onset"]).to_pydatetime())
    end = date2num(naive_utc_index(sel["end"]).to_pydatetime())
    width = np.maximum(end - on, 1 / 1440)
    return list(zip(on.tolist(), width.tolist(), strict=True))


def plot_timeline(
    fractions: pd.DataFrame,
    episodes: pd.DataFrame,
    path: str | Path,
    *,
    rsam: pd.Series | None = None,
    heights: pd.DataFrame | None = None,
    title: str = "",
    max_points: int = MAX_POINTS,
) -> Path:
    """The :func:`timeline_figure` as a PNG at ``path``."""
    fig = timeline_figure(
        fractions, episodes, rsam=rsam, heights=heights, title=title, max_points=max_points
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    log.debug("wrote %s", path)
    return path


def timeline_figure(
    fractions: pd.DataFrame,
    episodes: pd.DataFrame,
    *,
    rsam: pd.Series | None = None,
    heights: pd.DataFrame | None = None,
    title: str = "",
    max_points: int = MAX_POINTS,
) -> Figure:
    """Timeline: emission fractions, plume height, episodes per class, unobservable periods,
    RSAM.

    ``fractions``: per-frame emission fractions with NaN on unobservable frames (as
    :func:`plumenet.science.observability.activity_fractions`), so the grey band shows exactly
    what the camera could not see. ``heights``: per-frame plume heights
    (:func:`plumenet.science.plume.plume_heights`); the height panel (metres above the vent,
    or the top row in pixels without camera geometry) is drawn when any frame has one.
    """
    frac = fractions.copy()
    frac.index = naive_utc_index(frac.index)
    unobservable = frac.isna().all(axis=1).to_numpy()
    classes = [c for c in (*EMISSION_CLASSES, "any_emission") if c in frac.columns]
    height_cols = _height_columns(heights)
    panels = ["fractions", *(["height"] if height_cols else []), "episodes"]
    panels += ["rsam"] if rsam is not None else []
    ratios = {"fractions": 3, "height": 2, "episodes": 1.3, "rsam": 2}
    nrows = len(panels)
    fig = Figure(figsize=(12, 2.2 * nrows + 0.6))
    axes = fig.subplots(
        nrows, 1, sharex=True, gridspec_kw={"height_ratios": [ratios[p] for p in panels]}
    )
    ax: Axes = axes[0]
    shown = _decimate(frac[classes], max_points)
    for c in classes:
        style = {"lw": 0.6} if c != "any_emission" else {"lw": 0.4, "ls": ":"}
        ax.plot(shown.index, shown[c].to_numpy(), color=class_color(c), label=c, **style)
    ax.set_ylabel("fraction of view")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=7, ncol=len(classes))
    blind = _bars(frac.index, unobservable)
    if blind:  # one collection, however many nights
        ax.broken_barh(
            blind, (0, 1), facecolors="0.88", lw=0, zorder=0, transform=ax.get_xaxis_transform()
        )
    if height_cols:
        assert heights is not None
        _height_panel(axes[1], heights, height_cols, unobservable, frac.index, max_points)
    raster: Axes = axes[panels.index("episodes")]
    rows = [*classes, "unobservable"]
    for i, c in enumerate(rows):
        bars = (
            _bars(frac.index, unobservable) if c == "unobservable" else _episode_bars(episodes, c)
        )
        color = "0.6" if c == "unobservable" else class_color(c)
        if bars:
            raster.broken_barh(bars, (i - 0.4, 0.8), facecolors=color)
    raster.set_yticks(range(len(rows)), rows, fontsize=7)
    raster.set_ylim(-0.6, len(rows) - 0.4)
    raster.set_ylabel("episodes")
    if rsam is not None:
        r = rsam.copy()
        r.index = naive_utc_index(r.index)
        r = r[(r.index >= frac.index.min()) & (r.index <= frac.index.max())]
        r = _decimate(r.to_frame("rsam"), max_points)["rsam"]
        rax = axes[panels.index("rsam")]
        rax.plot(r.index, r.to_numpy(), color="k", lw=0.5)
        rax.set_yscale("log")
        rax.set_ylabel("RSAM")
    axes[-1].set_xlabel("time (UTC)")
    if title:
        fig.suptitle(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _height_columns(heights: pd.DataFrame | None) -> dict[str, str]:
    """Kind -> column to plot: metres when the camera has geometry, else the top row;
    empty when no frame has a plume height at all (older stores, tiled cameras)."""
    if heights is None:
        return {}
    metres = has_metres(heights)
    cols = {k: height_column(k) if metres else top_row_column(k) for k in HEIGHT_KINDS}
    cols = {k: c for k, c in cols.items() if c in heights}
    if not cols or not np.isfinite(heights[list(cols.values())].to_numpy()).any():
        return {}
    return cols


def _height_panel(
    ax: Axes,
    heights: pd.DataFrame,
    cols: dict[str, str],
    unobservable: np.ndarray,
    index: pd.DatetimeIndex,
    max_points: int,
) -> None:
    """Plume top per frame (block maxima when decimated), grey where nothing was seen."""
    h = heights[list(cols.values())].copy()
    h.index = naive_utc_index(h.index)
    metres = all(c.startswith("height_m_") for c in cols.values())
    shown = _decimate(h, max_points, how="max" if metres else "min")
    for kind, col in cols.items():
        style = {"lw": 0.4, "ls": ":"} if kind == "any_emission" else {"lw": 0.7}
        color = class_color(kind) if kind != "any_emission" else (0.3, 0.3, 0.3)
        ax.plot(shown.index, shown[col].to_numpy(), color=color, label=kind, marker=".",
                ms=1.5, **style)  # fmt: skip
    if metres:
        ax.set_ylabel("plume top above vent (m)")
    else:
        ax.set_ylabel("plume top row (px)")
        ax.invert_yaxis()  # row 0 is the top of the frame: higher plumes plot higher
    ax.legend(loc="upper right", fontsize=7, ncol=len(cols))
    blind = _bars(index, unobservable)
    if blind:
        ax.broken_barh(
            blind, (0, 1), facecolors="0.88", lw=0, zorder=0, transform=ax.get_xaxis_transform()
        )


def plot_xcorr(
    table: pd.DataFrame,
    path: str | Path,
    *,
    best_lag_s: float | None = None,
    refined_lag_s: float | None = None,
) -> Path:
    """Correlation vs lag (hours; positive = seismic leads) with the global 95 % band.

    The band is the 95 % quantile of the surrogates' largest |r| over all lags: an r
    outside it anywhere is significant at 5 % for the whole plot (a per-lag band is
    crossed somewhere by chance in most records).
    """
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    hours = table["lag_s"].to_numpy() / 3600.0
    if "r_global_q95" in table:
        q = float(table["r_global_q95"].iloc[0])
        label = "95 % of surrogates' max |r| over lags"
        ax.axhspan(-q, q, color="0.85", label=label, zorder=0)
    ax.plot(hours, table["r"].to_numpy(), color="k", lw=1, label="r")
    if best_lag_s is not None:
        ax.axvline(best_lag_s / 3600.0, color="tab:red", ls="--", lw=1, label="best lag")
    if refined_lag_s is not None and refined_lag_s != best_lag_s:
        ax.axvline(refined_lag_s / 3600.0, color="tab:orange", ls=":", lw=1, label="refined lag")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlabel("lag (h), positive: seismic leads emissions")
    ax.set_ylabel("Pearson r")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_epoch(table: pd.DataFrame, path: str | Path, *, label: str = "log10 RSAM") -> Path:
    """Superposed-epoch stack: mean and inter-quartile range around emission onsets."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    hours = table["offset_s"].to_numpy() / 3600.0
    ax.fill_between(
        hours, table["q25"].to_numpy(), table["q75"].to_numpy(), color="0.85", label="IQR"
    )
    ax.plot(hours, table["mean"].to_numpy(), color="k", lw=1, label="mean")
    ax.plot(hours, table["median"].to_numpy(), color="tab:blue", lw=0.8, label="median")
    ax.axvline(0, color="tab:red", ls="--", lw=1, label="emission onset")
    ax.set_xlabel("time from onset (h)")
    ax.set_ylabel(label)
    n = int(table["n"].max()) if len(table) else 0
    ax.set_title(f"superposed epochs (up to {n} onsets)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
