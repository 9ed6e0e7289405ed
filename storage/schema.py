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

from plumenet.encoding import (  # noqa: E402, F401  the codes this template describes
    MODEL_NONE,
    PROBABILITY_FILL,
    PROBABILITY_SCALE,
    STATUS_MEANINGS,
    STATUS_NONE,
    STATUS_OK,
    STATUS_UNREADABLE,
    STATUS_UNUSABLE,
    dequantize_probability,
    quantize_probability,
)

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
