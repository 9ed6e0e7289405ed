"""The store template: names, dims, dtypes, chunks, fills and CF attributes of a camera group.

This module only describes; :mod:`storage.store` creates and writes. The empty store's
metadata for a sample camera is checked in under ``storage/templates/sample_camera`` (see
:func:`storage.store.write_template`), so any change here shows up as a diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from plumenet.classes import MODEL_CLASSES

SCHEMA_VERSION = 1
CONVENTIONS = "CF-1.10"

#: ``status`` values.
STATUS_NONE, STATUS_OK, STATUS_UNREADABLE, STATUS_UNUSABLE = 0, 1, 2, 3
STATUS_MEANINGS = "none ok unreadable unusable"
#: ``model`` value of a slot no model has written.
MODEL_NONE = 255
#: ``probability`` is stored as round(p * 254); 255 is "no frame".
PROBABILITY_SCALE = 254
PROBABILITY_FILL = 255


def quantize_probability(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] (NaN: none) -> stored uint8 (``round(p * 254)``, 255 = none)."""
    p = np.asarray(prob, dtype=np.float32)
    q = np.rint(np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * PROBABILITY_SCALE)
    return np.where(np.isnan(p), PROBABILITY_FILL, q).astype(np.uint8)


def dequantize_probability(q: np.ndarray) -> np.ndarray:
    """Stored uint8 -> float32 probabilities; 255 -> NaN."""
    arr = np.asarray(q)
    out = arr.astype(np.float32) / np.float32(PROBABILITY_SCALE)
    out[arr == PROBABILITY_FILL] = np.nan
    return out


#: ``frame_time`` int64 fill (decodes to NaT).
FRAME_TIME_FILL = int(np.iinfo(np.int64).min)
#: Slots per chunk of the ``time`` coordinate (written by the driver only; few files to open).
TIME_COORD_UNITS_PER_CHUNK = 366
#: Blosc/zstd settings for every array.
BLOSC = {"cname": "zstd", "clevel": 5}


@dataclass(frozen=True)
class VariableSpec:
    """One array of the camera group (time-dimensioned unless ``dims`` says otherwise)."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    fill: Any
    attrs: dict[str, Any]


def time_units(grid_start_iso: str) -> str:
    """CF units of the ``time`` coordinate."""
    return f"seconds since {grid_start_iso}"


def frame_time_units(grid_start_iso: str) -> str:
    """CF units of ``frame_time`` (milliseconds keep sub-second frame stamps)."""
    return f"milliseconds since {grid_start_iso}"


def variable_specs(grid_start_iso: str) -> list[VariableSpec]:
    """Data and ledger variables, in write order (ledger ``status``, ``model`` last)."""
    return [
        VariableSpec(
            "fraction",
            ("time", "class"),
            "float32",
            float("nan"),
            {"long_name": "share of valid pixels per class (argmax)", "units": "1"},
        ),
        VariableSpec(
            "probability",
            ("time", "class", "y", "x"),
            "uint8",
            PROBABILITY_FILL,
            {
                "long_name": "class probability on the model's patch grid",
                "units": "1",
                "scale_factor": 1.0 / PROBABILITY_SCALE,
                "_FillValue": PROBABILITY_FILL,
            },
        ),
        VariableSpec(
            "frame_time",
            ("time",),
            "int64",
            FRAME_TIME_FILL,
            {
                "long_name": "timestamp of the frame in this slot (UTC)",
                "units": frame_time_units(grid_start_iso),
                "calendar": "proleptic_gregorian",
                "_FillValue": FRAME_TIME_FILL,
            },
        ),
        VariableSpec("source", ("time",), "str", "", {"long_name": "path of the frame"}),
        VariableSpec(
            "brightness",
            ("time",),
            "float32",
            float("nan"),
            {"long_name": "mean luminance of the frame", "units": "1"},
        ),
        VariableSpec(
            "anomaly",
            ("time",),
            "float32",
            float("nan"),
            {"long_name": "PaDiM anomaly score of the frame (NaN: not computed)"},
        ),
        VariableSpec(
            "status",
            ("time",),
            "uint8",
            STATUS_NONE,
            {
                "long_name": "processing status of the slot",
                "flag_values": [0, 1, 2, 3],
                "flag_meanings": STATUS_MEANINGS,
            },
        ),
        VariableSpec(
            "model",
            ("time",),
            "uint8",
            MODEL_NONE,
            {
                "long_name": "index into the group attribute `models` (255: none)",
                "missing_index": MODEL_NONE,
            },
        ),
    ]


#: Names of the time-dimensioned variables written by a work unit.
DATA_VARIABLES: tuple[str, ...] = (
    "fraction",
    "probability",
    "frame_time",
    "source",
    "brightness",
    "anomaly",
)
LEDGER_VARIABLES: tuple[str, ...] = ("status", "model")
CLASS_NAMES: tuple[str, ...] = MODEL_CLASSES
