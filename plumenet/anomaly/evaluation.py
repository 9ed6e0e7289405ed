"""Evaluating anomaly scores against a ground truth: frame labels and AUROC.

:func:`labels_from_truth` turns a ground-truth table (a ``label`` column, or emission
fraction columns) into 1/0/NaN labels for scored frames, matched by path or nearest
time; :func:`auroc` is the rank-based area under the ROC curve (ties count one half).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from plumenet.classes import EMISSION_CLASSES, LABEL_TO_MODEL

__all__ = ["auroc", "labels_from_truth"]


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[Any] | np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U); tied scores count one half.

    ``labels`` are truthy for anomalous frames. Both classes must be present and scores
    finite.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).astype(bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (drop frames without a score first)")
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUROC needs both anomalous and normal frames; got {n_pos} anomalous, {n_neg} normal"
        )
    ranks = rankdata(s, method="average")
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def labels_from_truth(
    truth: pd.DataFrame,
    frames: pd.DataFrame,
    *,
    threshold: float = 0.01,
    tolerance: str | pd.Timedelta = "30s",
) -> pd.Series:
    """Anomaly labels for ``frames`` (columns ``time`` and/or ``path``) from a ground truth.

    ``truth`` holds either a ``label`` column (truthy = anomalous) or emission fraction
    columns (model classes ``eruption_column, ash_emissions, non_ash_emissions, lava``, the
    label classes that merge into them, or ``any_emission``): a frame is anomalous when any
    of them exceeds ``threshold`` (all NaN: no label). Rows are matched on ``path`` when
    the truth has one (exact path, else file name), otherwise on the nearest ``time``
    within ``tolerance``. Returns a float Series aligned with ``frames`` (1.0, 0.0, NaN
    where unmatched or unlabelled).
    """
    if "label" in truth.columns:
        raw = truth["label"]
        if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
            text = raw.astype(str).str.strip().str.lower()
            known = {
                "1": 1.0,
                "true": 1.0,
                "yes": 1.0,
                "anomalous": 1.0,
                "anomaly": 1.0,
                "0": 0.0,
                "false": 0.0,
                "no": 0.0,
                "normal": 0.0,
            }
            bad = sorted(set(text) - set(known))
            if bad:
                raise ValueError(
                    f"truth column 'label' has values {bad[:3]}; use 1/0, true/false or "
                    "anomalous/normal"
                )
            value = text.map(known).astype(float)
        else:
            value = (raw.astype(float) > 0).astype(float)
    else:
        names = set(EMISSION_CLASSES) | {"any_emission"}
        names |= {k for k, v in LABEL_TO_MODEL.items() if v in EMISSION_CLASSES}
        cols = [c for c in truth.columns if c in names]
        if not cols:
            raise ValueError(
                "truth has neither a 'label' column nor emission fraction columns "
                f"({', '.join(sorted(names))}); columns: {', '.join(map(str, truth.columns))}"
            )
        peak = truth[cols].astype(float).max(axis=1)  # NaN where every fraction is NaN
        value = (peak > threshold).astype(float).where(peak.notna())
    labelled = pd.DataFrame({"value": value.to_numpy()})
    if "path" in truth.columns and "path" in frames.columns:
        lookup = dict(zip(truth["path"].astype(str), labelled["value"], strict=True))
        paths = frames["path"].astype(str)
        out = paths.map(lookup)
        if out.isna().any():  # truth paths relative to the archive: match file names
            by_name = {Path(k).name: v for k, v in lookup.items()}
            out = out.fillna(paths.map(lambda p: by_name.get(Path(p).name, np.nan)))
        return pd.Series(out.to_numpy(dtype=float), index=frames.index, name="label")
    if "time" not in truth.columns or "time" not in frames.columns:
        raise ValueError("truth and frames must share a 'path' or a 'time' column to be matched")
    labelled["time"] = (
        pd.to_datetime(truth["time"], utc=True).dt.as_unit("ns").reset_index(drop=True)
    )
    labelled = labelled.sort_values("time")
    left = pd.DataFrame(
        {
            "time": pd.to_datetime(frames["time"], utc=True)
            .dt.as_unit("ns")
            .reset_index(drop=True),
            "pos": np.arange(len(frames)),
        }
    ).sort_values("time")
    merged = pd.merge_asof(
        left, labelled, on="time", direction="nearest", tolerance=pd.Timedelta(tolerance)
    ).sort_values("pos")
    return pd.Series(merged["value"].to_numpy(dtype=float), index=frames.index, name="label")
