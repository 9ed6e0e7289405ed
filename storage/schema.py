"""The store template: names, dims, dtypes, chunks, fills and CF attributes of a camera group.

This module only describes; :mod:`storage.zarr_store` creates and extends, and
:mod:`storage.regions` writes. The codes themselves (status values, the uint8 probability
encoding) are :mod:`plumenet.encoding`'s. The empty store's metadata for a sample camera is
checked in under ``storage/templates/sample_camera`` (see
:func:`storage.template.write_template`), so any change here shows up as a diff.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from plumenet.classes import MODEL_CLASSES, PLUME_KINDS
from plumenet.encoding import (
    MODEL_NONE,
    PROBABILITY_FILL,
    PROBABILITY_SCALE,
    STATUS_MEANINGS,
    STATUS_NONE,
    STATUS_OK,
    STATUS_UNREADABLE,
    STATUS_UNUSABLE,
)

#: 2: plume geometry and solar elevation per frame (docs/store.md, migration).
SCHEMA_VERSION = 2
CONVENTIONS = "CF-1.11"
#: Group attributes holding nested values, stored as JSON strings so that netCDF (which has
#: no nested attributes) can take them; :func:`parse_json_attr` reads both forms.
JSON_ATTRIBUTES: tuple[str, ...] = ("camera", "models", "class_colors")
#: First words of every ``history`` line this package writes (a test fixes the template's).
HISTORY_PRODUCER = "plumenet"

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


def json_attr(value: Any) -> str:
    """A nested attribute value as the store keeps it (compact, key-sorted JSON)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def parse_json_attr(value: Any) -> Any:
    """A nested attribute as Python: JSON strings (schema >= CF-1.11 stores) parsed, the
    dicts/lists of older stores passed through."""
    return json.loads(value) if isinstance(value, str) else value


def history_line(when: str, what: str) -> str:
    """One CF ``history`` line (``<UTC time> plumenet: <what>``)."""
    return f"{when} {HISTORY_PRODUCER}: {what}"


def title(camera_id: str) -> str:
    """The CF ``title`` of a camera group."""
    return f"plumenet webcam segmentation of camera {camera_id}"


def time_attrs(grid_start_iso: str) -> dict[str, Any]:
    """CF attributes of the ``time`` coordinate."""
    return {
        "standard_name": "time",
        "long_name": "slot time (UTC)",
        "axis": "T",
        "units": time_units(grid_start_iso),
        "calendar": "proleptic_gregorian",
    }


def class_attrs() -> dict[str, Any]:
    """Attributes of the ``class`` coordinate: the class order also as one space-separated
    attribute, for readers without Zarr's variable-length ``string`` data type."""
    return {"long_name": "model class", "class_names": " ".join(CLASS_NAMES)}


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
                "standard_name": "time",
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
            {"long_name": "PaDiM anomaly score of the frame (NaN: not computed)", "units": "1"},
        ),
        *plume_specs(),
        VariableSpec(
            "status",
            ("time",),
            "uint8",
            STATUS_NONE,
            {
                "long_name": "processing status of the slot",
                "flag_values": [STATUS_NONE, STATUS_OK, STATUS_UNREADABLE, STATUS_UNUSABLE],
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
                "_FillValue": MODEL_NONE,
            },
        ),
    ]


#: Emission kinds along the ``emission`` dimension of the plume variables (no coordinate
#: array: the order is the group attribute ``emission_names``).
EMISSION_NAMES: tuple[str, ...] = PLUME_KINDS
#: Variables added in schema version 2; an older group gets them on its next backfill.
PLUME_VARIABLES: tuple[str, ...] = (
    "plume_top_row",
    "plume_center_col",
    "plume_width",
    "plume_height_m",
    "plume_drift_m",
    "solar_elevation",
)


def plume_specs() -> list[VariableSpec]:
    """The per-frame plume geometry and solar elevation (docs/geometry.md)."""
    pixels = "pixels of the original frame, x right, y down, pixel centres at integers"

    def plume(name: str, long_name: str, units: str, comment: str) -> VariableSpec:
        attrs = {"long_name": long_name, "units": units, "comment": comment}
        return VariableSpec(name, ("time", "emission"), "float32", float("nan"), attrs)

    return [
        plume(
            "plume_top_row",
            "row of the robust top of the emission (1 % of its pixels lie above)",
            "1",
            f"{pixels}; NaN: no emission or not computed",
        ),
        plume("plume_center_col", "column of the emission's centroid", "1", pixels),
        plume(
            "plume_width",
            "robust horizontal extent of the emission (1 % to 99 % of its pixels)",
            "1",
            pixels,
        ),
        plume(
            "plume_height_m",
            "height of the emission top above the vent",
            "m",
            "pinhole camera, plume in the vertical plane through the vent; NaN without "
            "camera geometry",
        ),
        plume(
            "plume_drift_m",
            "horizontal offset of the emission centroid from the vent, at the vent's distance",
            "m",
            "positive to the right of the vent in the frame; NaN without camera geometry",
        ),
        VariableSpec(
            "solar_elevation",
            ("time",),
            "float32",
            float("nan"),
            {
                "standard_name": "solar_elevation_angle",
                "long_name": "geometric elevation of the sun at the site at the frame time",
                "units": "degree",
                "comment": "NOAA solar position equations, no refraction; NaN without site",
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
    *PLUME_VARIABLES,
)
#: Written last, in this order: ``status`` is the very last write of a unit, so a slot with
#: status ok always has its ``model`` (a worker killed in between leaves status 0: redone).
LEDGER_VARIABLES: tuple[str, ...] = ("model", "status")
CLASS_NAMES: tuple[str, ...] = MODEL_CLASSES
