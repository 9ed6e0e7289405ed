"""Parsing the start and end of a time range given by a user (CLI options, flow parameters).

Ranges are half-open ``[start, end)`` and always UTC. A date-only end means "through that
day": ``--start 2024-03-01 --end 2024-03-01`` is the whole of 1 March.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import numpy as np
import pandas as pd

from plumenet.errors import ConfigError

_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
#: An ISO 8601 timestamp as users and our own files write it (extended format, a time of
#: day, an optional offset). Anything looser is refused: pandas would read 01/03/2024 as
#: 3 January and 2024-3-2 as an exact midnight, so a date range could silently shift.
_ISO_TIMESTAMP = re.compile(
    r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?\s*$",
    re.IGNORECASE,
)
_TIME_HINT = (
    "use a date (2024-03-01) or an ISO timestamp (2024-03-01T06:00, 2024-03-01T06:00+13:00)"
)
#: The one time format of every CSV file plumenet writes (UTC, ISO 8601, ``Z``).
CSV_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

TimeLike = str | date | datetime | pd.Timestamp


def to_utc(value: TimeLike) -> pd.Timestamp:
    """``value`` as a tz-aware UTC timestamp (naive values are taken as UTC).

    Text must be ISO 8601: ``YYYY-MM-DD`` or a timestamp with a time of day.
    """
    if isinstance(value, str) and not (_DATE_ONLY.match(value) or _ISO_TIMESTAMP.match(value)):
        raise ConfigError(f"cannot read {value!r} as a time — {_TIME_HINT}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"cannot read {value!r} as a time — {_TIME_HINT}") from err
    if ts is pd.NaT or pd.isna(ts):
        raise ConfigError(f"{value!r} is not a time — {_TIME_HINT}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns")


def _is_date_only(value: TimeLike) -> bool:
    if isinstance(value, str):
        return bool(_DATE_ONLY.match(value))
    return isinstance(value, date) and not isinstance(value, datetime)


def parse_start(value: TimeLike) -> pd.Timestamp:
    """Inclusive start of a range: a date means its midnight UTC."""
    return to_utc(value)


def parse_end(value: TimeLike) -> pd.Timestamp:
    """Exclusive end of a range: a date-only value includes that whole day (next midnight)."""
    ts = to_utc(value)
    if _is_date_only(value):
        ts = ts + pd.Timedelta(days=1)
    return ts


def parse_range(start: TimeLike, end: TimeLike) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end)`` in UTC; an empty or reversed range is an error."""
    t0, t1 = parse_start(start), parse_end(end)
    if t1 <= t0:
        raise ConfigError(
            f"time range is empty: end {t1.isoformat()} is not after start {t0.isoformat()} — "
            "give an --end later than --start (a date-only --end includes that day)"
        )
    return t0, t1


_UNITLESS = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$")


def is_bare_number(value: object) -> bool:
    """Whether ``value`` is text holding a number without a unit (``31``, ``8``, ``0.5``):
    pandas reads it as nanoseconds and Dask as bytes, so a user's durations and amounts of
    memory refuse it."""
    return isinstance(value, str) and bool(_UNITLESS.match(value))


def parse_duration_text(value: object, what: str, *, allow_zero: bool = False) -> pd.Timedelta:
    """A duration a user wrote (``10min``, ``36h``, ``2D``, ISO ``PT36H``) for ``what``.

    A number without a unit is refused: pandas would read ``31`` as 31 nanoseconds. So is
    anything unreadable, negative, or zero (unless ``allow_zero``); the ValueError names
    ``what`` and echoes the value as given.
    """
    example = "e.g. 10min, 6h or 1D"
    if isinstance(value, pd.Timedelta):
        td = value
    else:
        if is_bare_number(value):
            raise ValueError(f"{what} {value!r} has no unit — give one, {example}")
        try:
            td = pd.Timedelta(value)  # type: ignore[arg-type]
        except (ValueError, TypeError) as err:
            raise ValueError(f"{what} {value!r} is not a duration — {example}") from err
    if pd.isna(td) or td < pd.Timedelta(0) or (td == pd.Timedelta(0) and not allow_zero):
        bound = "zero or longer" if allow_zero else "longer than zero"
        raise ValueError(f"{what} {value!r} must be {bound} — {example}")
    return td


def naive_utc_index(values: object) -> pd.DatetimeIndex:
    """Any datetime-like values (naive = UTC, or tz-aware) as a naive UTC index in ns.

    The one conversion used before times meet numpy, Zarr or matplotlib, which all want
    naive UTC; tz-aware inputs are converted, naive inputs are taken as UTC already.
    """
    if not isinstance(values, pd.Index | pd.Series):
        values = np.asarray(values)
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns")


def naive_utc(value: TimeLike | np.datetime64) -> pd.Timestamp:
    """One time as a naive UTC timestamp in ns (naive input is taken as UTC)."""
    return to_utc(value).tz_localize(None)


def utc_ns(values: object) -> np.ndarray:
    """Any datetime-like values as int64 nanoseconds since the epoch (UTC)."""
    return naive_utc_index(values).asi8


#: Work-unit lengths a camera's default unit is chosen from: each divides a day or is whole days.
UNIT_CANDIDATES = (
    "10min", "15min", "20min", "30min", "1h", "2h", "3h", "4h", "6h", "8h", "12h",
    "1D", "2D", "7D", "14D", "28D",
)  # fmt: skip
#: The most slots a default unit holds (a unit is one task: enough frames to hide its overhead).
UNIT_MAX_SLOTS = 2000


def default_unit(cadence: str | pd.Timedelta) -> str:
    """The work-unit length for ``cadence``: the longest candidate of at most 2,000 slots.

    Sized so one unit (one task, one chunk, one shard) holds roughly 500-2,000 frames: 1 day
    at 1 min, 7 days at 10 min, 4 h at 10 s. A cadence slower than ~20 min gets 28 days.
    """
    step = pd.Timedelta(cadence)
    best = "1D"
    for name in UNIT_CANDIDATES:
        length = pd.Timedelta(name)
        if length % step == pd.Timedelta(0) and length // step <= UNIT_MAX_SLOTS:
            best = name
    return best
