"""Observability: could the camera see the volcano, and what did it see?

Per-frame reason codes (:data:`REASONS`; 0 = observable) from the frame status,
brightness, the sun's elevation (``solar_elevation``, schema 2 stores with a camera
``site``) and the land share against the camera's clear-view baseline, and the
per-frame emission fractions with NaN on every frame that was not observable. Pure
functions over one camera's dataset in the store schema (docs/catalogue.md, section 1).

The rule throughout: a frame we could not see is *unobservable* (NaN, or a
separate flag), never "no activity" (0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.classes import EMISSION_CLASSES, MODEL_CLASSES
from plumenet.encoding import STATUS_NONE, STATUS_OK, STATUS_UNREADABLE
from plumenet.science.daylight import CIVIL_TWILIGHT_DEG

#: Pseudo-class: the sum of the emission class fractions.
ANY_EMISSION = "any_emission"


#: Classes the catalogue reports on, in output order.
ACTIVITY_CLASSES: tuple[str, ...] = (*EMISSION_CLASSES, ANY_EMISSION)

# Observability reason codes (uint8), see REASONS.
OBSERVABLE = 0
NO_FRAME = 1
UNREADABLE = 2
UNUSABLE = 3
DARK = 4
OBSTRUCTED = 5
#: Code -> meaning of the values returned by :func:`observability_reasons`.
REASONS: dict[int, str] = {
    OBSERVABLE: "observable",
    NO_FRAME: "no frame",
    UNREADABLE: "unreadable frame",
    UNUSABLE: "unusable frame",
    DARK: "dark (night)",
    OBSTRUCTED: "view obstructed (land hidden, no emission; or dark while the sun is up)",
}


@dataclass(frozen=True)
class ObservabilityParams:
    """Observability thresholds; ``baseline=None`` learns the clear-view land share."""

    dark_threshold: float = 0.12
    land_drop: float = 0.5
    baseline: float | None = None
    baseline_quantile: float = 0.9
    emission_present: float = 0.01
    min_baseline: float = 0.02
    night_sun_elevation: float = CIVIL_TWILIGHT_DEG


def _class_index(ds: xr.Dataset, name: str) -> int:
    names = [str(c) for c in ds["class"].values]
    if name not in names:
        raise ValueError(f"dataset has no class {name!r}; it has {', '.join(names)}")
    return names.index(name)


def _fractions(ds: xr.Dataset) -> np.ndarray:
    """(time, 6) float64 fractions in MODEL_CLASSES order."""
    frac = ds["fraction"].transpose("time", "class").values.astype(np.float64, copy=False)
    order = [_class_index(ds, c) for c in MODEL_CLASSES]
    return frac[:, order]


def _solar_elevation(ds: xr.Dataset, n: int) -> np.ndarray:
    """Per-frame sun elevation (degrees), NaN where unknown (older stores, no site)."""
    if "solar_elevation" not in ds:
        return np.full(n, np.nan)
    return ds["solar_elevation"].values.astype(np.float64)


def land_baseline(land: np.ndarray, candidate: np.ndarray, *, quantile: float = 0.9) -> float:
    """The camera's clear-view land share: a high quantile over candidate (ok, lit) frames.

    A high quantile, not the mean, because clouds only ever hide land; the clearest
    views define what the camera sees on a good day.
    """
    values = land[candidate & np.isfinite(land)]
    if values.size == 0:
        return float("nan")
    return float(np.quantile(values, quantile))


def observability_reasons(
    ds: xr.Dataset,
    *,
    dark_threshold: float = ObservabilityParams.dark_threshold,
    land_drop: float = ObservabilityParams.land_drop,
    baseline: float | None = None,
    baseline_quantile: float = ObservabilityParams.baseline_quantile,
    emission_present: float = ObservabilityParams.emission_present,
    min_baseline: float = ObservabilityParams.min_baseline,
    night_sun_elevation: float = ObservabilityParams.night_sun_elevation,
) -> xr.DataArray:
    """Per-frame reason code (uint8, :data:`REASONS`); 0 means the frame is observable.

    A frame is observable when it decoded (status 1), is not dark
    (``brightness >= dark_threshold``), and the view is open: land covers at least
    ``land_drop`` x the clear-view baseline, or an emission covers at least
    ``emission_present`` (an emission in front of the land is a view, not an
    obstruction). When the baseline is below ``min_baseline`` (a camera that sees
    no land) the land test is skipped. The learned baseline is in ``attrs``.

    Night needs the sun: where the dataset has a finite ``solar_elevation``, a dark frame
    is *dark (night)* only with the sun below ``night_sun_elevation`` (default civil
    twilight, -6 degrees); dark with the sun above it (a storm at noon, a covered lens) is
    *obstructed*. Without a solar elevation, darkness alone means night, as before.
    """
    status = ds["status"].values.astype(np.uint8)
    n = status.shape[0]
    reasons = np.full(n, OBSERVABLE, dtype=np.uint8)
    reasons[status == STATUS_NONE] = NO_FRAME
    reasons[status == STATUS_UNREADABLE] = UNREADABLE
    known = (status == STATUS_NONE) | (status == STATUS_OK) | (status == STATUS_UNREADABLE)
    reasons[~known] = UNUSABLE
    ok = status == STATUS_OK
    if "brightness" in ds:
        bright = ds["brightness"].values.astype(np.float64)
        dark = ok & ~(bright >= dark_threshold)
    else:
        dark = np.zeros(n, dtype=bool)
    sun = _solar_elevation(ds, n)
    sun_up = np.isfinite(sun) & (sun >= night_sun_elevation)
    reasons[dark & ~sun_up] = DARK
    reasons[dark & sun_up] = OBSTRUCTED
    lit = ok & ~dark
    frac = _fractions(ds)
    land = frac[:, MODEL_CLASSES.index("land")]
    emission = frac[:, [MODEL_CLASSES.index(c) for c in EMISSION_CLASSES]].sum(axis=1)
    if baseline is None:
        baseline = land_baseline(land, lit, quantile=baseline_quantile)
    if np.isfinite(baseline) and baseline >= min_baseline:
        hidden = ~(land >= land_drop * baseline) & ~(emission >= emission_present)
        reasons[lit & hidden] = OBSTRUCTED
    # An ok frame with NaN fractions cannot be read either.
    reasons[lit & ~np.isfinite(frac).all(axis=1)] = UNUSABLE
    return xr.DataArray(
        reasons,
        dims=("time",),
        coords={"time": ds["time"].values},
        name="observability_reason",
        attrs={
            "land_baseline": float(baseline),
            "night_sun_elevation": float(night_sun_elevation),
            "codes": "; ".join(f"{k}: {v}" for k, v in REASONS.items()),
        },
    )


def observability(ds: xr.Dataset, **params: float | None) -> xr.DataArray:
    """Per-frame bool: could the camera see the volcano? (see :func:`observability_reasons`)."""
    reasons = observability_reasons(ds, **params)
    out = reasons == OBSERVABLE
    out.name = "observable"
    out.attrs = dict(reasons.attrs)
    return out


def activity_fractions(ds: xr.Dataset, observable: np.ndarray | xr.DataArray) -> pd.DataFrame:
    """Emission fractions + any_emission per frame; NaN on unobservable frames."""
    frac = _fractions(ds)
    cols = {c: frac[:, MODEL_CLASSES.index(c)] for c in EMISSION_CLASSES}
    cols[ANY_EMISSION] = np.sum([cols[c] for c in EMISSION_CLASSES], axis=0)
    df = pd.DataFrame(cols, index=pd.DatetimeIndex(ds["time"].values, name="time"))
    mask = np.asarray(observable, dtype=bool)
    df[~mask] = np.nan
    return df
