"""Typed flow parameters: what the Prefect UI shows (date pickers, duration fields) and
validates before a run starts. (Prefect takes each parameter's description from the flow
docstring's ``Args:`` section.)

Dates and timestamps keep the command line's meaning: a date-only ``end`` includes that whole
day, a timestamp is exact (naive = UTC). Durations take ISO 8601 (``P2D``, ``PT36H``) as the
UI writes them, or pandas strings (``2D``, ``36h``) as the CLI and ``prefect.yaml`` do.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from pydantic import BeforeValidator, Field

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_or_datetime(value: Any) -> Any:
    """``"2024-03-01"`` -> a date (whole day), any other ISO string -> a datetime."""
    if isinstance(value, str):
        text = value.strip()
        if _DATE_ONLY.match(text):
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value


def _duration(value: Any) -> Any:
    """pandas duration strings (``2D``, ``36h``, ``90min``) as a timedelta; ISO 8601 and
    numbers (seconds) are left to pydantic."""
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        try:
            return pd.Timedelta(value).to_pytimedelta()
        except ValueError:
            return value  # pydantic reports it
    return value


#: A range bound: a date (``end``: that whole day included) or an ISO timestamp.
TimeBound = Annotated[datetime | date, BeforeValidator(_date_or_datetime)]
#: A duration (ISO 8601 or a pandas string; the jobs layer says when it must be positive).
Duration = Annotated[timedelta, BeforeValidator(_duration)]
#: An optional duration.
OptionalDuration = Annotated[timedelta | None, BeforeValidator(_duration)]
#: Camera ids (None: every camera of the config).
Cameras = list[str] | None
#: A ``--cluster`` string or a whole ``cluster:`` section (None: the config's).
Cluster = str | dict[str, Any] | None
#: Frames per model batch.
BatchSize = Annotated[int, Field(ge=1)]


def duration_text(value: timedelta | None) -> str | None:
    """A timedelta as a string the jobs layer reads back with ``pd.Timedelta`` (ISO 8601)."""
    return None if value is None else pd.Timedelta(value).isoformat()
