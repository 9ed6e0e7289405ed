"""All comparisons of one camera's activity with seismic data, as one JSON-ready result.

:func:`activity_series` picks the compared series out of binned activity;
:func:`compare` runs the lagged correlation with RSAM
(:mod:`plumenet.science.correlation`), event coincidence and the superposed epochs
(:mod:`plumenet.science.coincidence`) and returns settings, results and tables. Pure:
reading seismic files and writing outputs is :mod:`plumenet.jobs.compare`'s. Lag sign:
positive when the seismic signal leads. Outputs: docs/catalogue.md, section 6.4.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.science.coincidence import coincidence_analysis, family_p_value, superposed_epoch
from plumenet.science.correlation import align_rsam, bin_step, cross_correlation
from plumenet.science.plume import HEIGHT_KINDS
from plumenet.science.stationarity import Deseason, Detrend
from plumenet.timeutil import naive_utc_index, parse_duration_text

#: Compared series by name (``plumenet compare --series``) -> binned activity variable:
#: the share of observable frames with the class present, or the bin's highest plume top
#: above the vent (metres; 0 when seen without a plume).
SERIES: dict[str, str] = {"share": "present_share", "height": "height_max_m"}
#: What ``settings["eca_null"]`` says of the ECA surrogates used.
ECA_NULL_TEXT: dict[str, str] = {
    "rotation": "rotation: seismic events turned round the record by whole days, onsets as "
    "seen (keeps clustering, time of day and the observing pattern)",
    "day-shift": "day shift: same time of day, onsets only into observable bins (keeps no "
    "clustering)",
}


def series_variable(series: str, cls: str) -> str:
    """The binned variable of ``series`` for class ``cls``; ValueError for impossible pairs."""
    if series not in SERIES:
        raise ValueError(f"unknown series {series!r}; use one of {', '.join(SERIES)}")
    if series == "height" and cls not in HEIGHT_KINDS:
        raise ValueError(
            f"class {cls!r} has no plume height; height series exist for {', '.join(HEIGHT_KINDS)}"
        )
    return SERIES[series]


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
    s.index = naive_utc_index(s.index)
    s.name = f"{variable}_{cls}"
    return s.sort_index()


def compare(
    activity: xr.Dataset | pd.DataFrame | pd.Series,
    rsam: pd.Series | None,
    events: pd.DataFrame | None,
    episodes: pd.DataFrame | None,
    *,
    cls: str = "any_emission",
    series: str = "share",
    variable: str | None = None,
    max_lag: str = "72h",
    lags: Sequence[str] = ("0h", "6h", "1D"),
    windows: Sequence[str] = ("1h", "6h", "1D"),
    n_surrogates: int = 499,
    n_shuffles: int = 999,
    epoch_before: str = "2D",
    epoch_after: str = "2D",
    seed: int | None = 0,
    detrend: Detrend = "auto",
    deseason: Deseason = "auto",
    surrogates: str = "auto",
    observable: pd.Series | None = None,
    eca_null: str = "auto",
) -> dict[str, object]:
    """All comparisons for one camera.

    Returns a dict with JSON-ready ``xcorr``, ``coincidence`` (list of rows),
    ``coincidence_family_p`` (the one family-wise p of the ECA grid), ``epoch``
    summaries and ``settings``, plus ``tables`` (DataFrames: xcorr, coincidence, epoch)
    for CSV and figures. Parts whose input is missing are None. ``observable``: bool
    per activity bin, when onsets could be seen (default: bins with a finite activity
    value); the ECA surrogates only put onsets there. ``series``: what is correlated with
    RSAM (:data:`SERIES`: ``share`` or ``height``); ``variable`` overrides it by name.
    ``eca_null``: the ECA surrogates (``auto``, ``rotation``, ``day-shift``; see
    :func:`~plumenet.science.coincidence.coincidence_analysis`).
    """
    parse_duration_text(max_lag, "--max-lag")
    for w in windows:
        parse_duration_text(w, "--window")
    for x in lags:
        parse_duration_text(x, "--lag", allow_zero=True)
    parse_duration_text(epoch_before, "epoch_before", allow_zero=True)
    parse_duration_text(epoch_after, "epoch_after", allow_zero=True)
    variable = variable or series_variable(series, cls)
    act = activity_series(activity, cls=cls, variable=variable)
    if series == "height" and not act.notna().any():
        raise ValueError(
            f"no plume height in metres for {cls} in any bin — the camera needs `geometry` "
            "in cameras.yaml and a schema-2 store; or compare the share (--series share)"
        )
    settings: dict[str, object] = {
        "activity": act.name,
        "series": series,
        "lag_sign": "positive lag = seismic leads emissions",
        "max_lag_s": pd.Timedelta(max_lag).total_seconds(),
        "n_surrogates": n_surrogates,
        "n_shuffles": n_shuffles,
        "eca_windows_s": [pd.Timedelta(w).total_seconds() for w in windows],
        "eca_lags_s": [pd.Timedelta(x).total_seconds() for x in lags],
        "episode_class": cls,
        "seed": seed,
        "detrend": detrend,
        "deseason": deseason,
        "surrogates": surrogates,
        "eca_null": None,
        "eca_null_requested": eca_null,
        "eca_null_reason": None,
        "eca_surrogates": None,
    }
    out: dict[str, object] = {
        "settings": settings,
        "xcorr": None,
        "coincidence": None,
        "coincidence_family_p": None,
        "epoch": None,
    }
    tables: dict[str, pd.DataFrame] = {}
    onsets = pd.DatetimeIndex([])
    if episodes is not None and len(episodes):
        onsets = pd.DatetimeIndex(episodes.loc[episodes["class"] == cls, "onset"])
    start = act.index[0] if len(act) else None
    end = act.index[-1] + bin_step(act.index) if len(act) > 1 else None
    if rsam is not None and len(rsam):
        log_rsam = align_rsam(rsam, act.index)
        xc = cross_correlation(
            act, log_rsam, max_lag=max_lag, n_surrogates=n_surrogates, seed=seed,
            detrend=detrend, deseason=deseason, surrogates=surrogates,
        )  # fmt: skip
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
            observable=act.notna() if observable is None else observable,
            null=eca_null,
        )
        settings["eca_null"] = ECA_NULL_TEXT[eca.attrs["eca_null"]]
        settings["eca_null_reason"] = eca.attrs["eca_null_reason"]
        settings["eca_surrogates"] = eca.attrs["n_surrogates"]
        tables["coincidence"] = eca
        out["coincidence"] = eca.to_dict(orient="records")
        out["coincidence_family_p"] = family_p_value(eca)
    out["tables"] = tables
    return out
