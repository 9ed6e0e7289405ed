"""Seismic inputs: RSAM series (CSV or computed from miniSEED) and event catalogues.

All times come back as UTC (tz-aware pandas). A malformed file raises
:class:`~plumenet.errors.SeismicInputError` naming the file and the line or field.
miniSEED and QuakeML are read with ObsPy (and lxml, for the line of a QuakeML syntax error).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from lxml import etree
from obspy import Stream
from obspy import read as obspy_read
from obspy import read_events as obspy_read_events

from plumenet.errors import ConfigError, SeismicInputError
from plumenet.timeutil import to_utc

log = logging.getLogger(__name__)

#: Columns of the event table returned by :func:`read_events`.
EVENT_COLUMNS: tuple[str, ...] = (
    "time",
    "magnitude",
    "latitude",
    "longitude",
    "depth_km",
    "event_id",
)

_FDSN_FIELDS = (
    "eventid",
    "time",
    "latitude",
    "longitude",
    "depth/km",
    "author",
    "catalog",
    "contributor",
    "contributorid",
    "magtype",
    "magnitude",
    "magauthor",
    "eventlocationname",
)


def _parse_time(text: str, where: str) -> pd.Timestamp:
    """One timestamp -> UTC (naive = UTC), or an error naming the file, line and field."""
    if not text.strip():
        raise SeismicInputError(f"{where}: empty time; every row needs an ISO 8601 time")
    try:
        return to_utc(text.strip())
    except ConfigError:
        raise SeismicInputError(f"{where}: cannot read time {text!r}; use ISO 8601 UTC") from None


def _parse_float(text: str, where: str, *, allow_empty: bool = True) -> float:
    text = text.strip()
    if not text and allow_empty:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise SeismicInputError(f"{where}: {text!r} is not a number") from None


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SeismicInputError(f"{path}: no such file; check the path") from None
    except UnicodeDecodeError as err:
        raise SeismicInputError(
            f"{path}: not a text file ({err.reason} at byte {err.start}); expected CSV, "
            "FDSN event text or QuakeML"
        ) from None


def _csv_rows(path: str | Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (lower-case) and (line number, fields) of each non-empty, non-comment row."""
    rows = []
    header: list[str] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = next(csv.reader(io.StringIO(line)))
        if header is None:
            header = [f.strip().lower() for f in fields]
            continue
        rows.append((lineno, fields))
    if header is None:
        raise SeismicInputError(f"{path}: empty file; expected a header line and rows")
    return header, rows


def read_rsam_csv(path: str | Path) -> pd.Series:
    """RSAM from a CSV with columns ``time,value`` -> Series (UTC index, sorted, name 'rsam').

    Years of 10-min RSAM are read by pandas in one go; only when that fails is the file
    parsed row by row, to name the offending line and field.
    """
    text = _read_text(path)
    try:
        df = pd.read_csv(io.StringIO(text), comment="#", skipinitialspace=True)
        df.columns = [str(c).strip().lower() for c in df.columns]
        if list(df.columns) == ["time", "value"] and not df["time"].isna().any():
            times = pd.to_datetime(df["time"].astype(str).str.strip(), format="ISO8601", utc=True)
            values = pd.to_numeric(df["value"], errors="raise").astype(np.float64)
            index = pd.DatetimeIndex(times, name="time").as_unit("ns")
            return pd.Series(values.to_numpy(), index=index, name="rsam").sort_index()
    except (ValueError, TypeError, pd.errors.ParserError):
        log.debug("%s: fast CSV read failed; parsing row by row to locate the problem", path)
    return _read_rsam_rows(path, text)


def _read_rsam_rows(path: str | Path, text: str) -> pd.Series:
    header, rows = _csv_rows(path, text)
    for col in ("time", "value"):
        if col not in header:
            raise SeismicInputError(
                f"{path}: line 1: no column {col!r} (header is {','.join(header)}); "
                "RSAM CSV needs columns time,value"
            )
    it, iv = header.index("time"), header.index("value")
    times, values = [], []
    for lineno, fields in rows:
        where = f"{path}: line {lineno}"
        if len(fields) != len(header):
            raise SeismicInputError(
                f"{where}: {len(fields)} fields, header has {len(header)}; fix the row"
            )
        times.append(_parse_time(fields[it], f"{where}, field 'time'"))
        values.append(_parse_float(fields[iv], f"{where}, field 'value'"))
    index = pd.DatetimeIndex(times, name="time")
    if len(index):
        index = index.as_unit("ns")
    series = pd.Series(np.asarray(values, dtype=np.float64), index=index, name="rsam")
    return series.sort_index()


def rsam_from_mseed(
    paths_or_stream: str | Path | Iterable[str | Path] | object,
    *,
    window: str = "10min",
    freqmin: float = 2.0,
    freqmax: float = 5.0,
    corners: int = 4,
    min_coverage: float = 0.5,
    seed_id: str | None = None,
) -> pd.Series:
    """RSAM: mean |x| per window of the linearly detrended, band-passed signal.

    Gaps stay gaps: traces are merged with masked gaps and each contiguous segment
    is detrended and filtered on its own (no taper, Butterworth ``corners`` poles,
    causal, as ObsPy's ``bandpass``). Windows are aligned to whole multiples of
    ``window`` since 1970-01-01 UTC; a window with less than ``min_coverage`` of its
    samples is NaN. One channel per call: pass ``seed_id`` when the data hold more.
    """
    if isinstance(paths_or_stream, Stream):
        stream = paths_or_stream.copy()
    else:
        paths = (
            [paths_or_stream] if isinstance(paths_or_stream, str | Path) else list(paths_or_stream)  # type: ignore[arg-type]
        )
        stream = Stream()
        for p in paths:
            try:
                stream += obspy_read(str(p))
            except FileNotFoundError:
                raise SeismicInputError(f"{p}: no such file; check the path") from None
            except (TypeError, ValueError, OSError) as err:
                raise SeismicInputError(
                    f"{p}: not readable as miniSEED ({err}); pass a miniSEED file or an RSAM CSV"
                ) from None
    if seed_id is not None:
        stream = stream.select(id=seed_id)
    ids = sorted({tr.id for tr in stream})
    if not ids:
        raise SeismicInputError(
            f"no waveform data{f' for {seed_id}' if seed_id else ''}; check the miniSEED files"
        )
    if len(ids) > 1:
        raise SeismicInputError(
            f"miniSEED holds {len(ids)} channels ({', '.join(ids)}); choose one with seed_id"
        )
    rates = {tr.stats.sampling_rate for tr in stream}
    if len(rates) > 1:
        raise SeismicInputError(f"channel {ids[0]} changes sampling rate ({sorted(rates)})")
    fs = float(rates.pop())
    if freqmax >= fs / 2:
        raise SeismicInputError(
            f"freqmax {freqmax} Hz is not below the Nyquist frequency {fs / 2} Hz of {ids[0]}"
        )
    stream.merge(method=0, fill_value=None)
    segments = stream.split()
    win_ns = pd.Timedelta(window).value
    step_ns = 1e9 / fs
    idx_parts, val_parts = [], []
    for tr in segments:
        if tr.stats.npts < 3 * corners:
            continue
        tr.data = tr.data.astype(np.float64)
        tr.detrend("linear")
        tr.filter("bandpass", freqmin=freqmin, freqmax=freqmax, corners=corners, zerophase=False)
        t0 = tr.stats.starttime.ns
        t = t0 + np.rint(np.arange(tr.stats.npts) * step_ns).astype(np.int64)
        idx_parts.append(np.floor_divide(t, win_ns))
        val_parts.append(np.abs(tr.data))
    if not idx_parts:
        raise SeismicInputError(f"channel {ids[0]}: no segment long enough to filter")
    widx = np.concatenate(idx_parts)
    vals = np.concatenate(val_parts)
    lo, hi = int(widx.min()), int(widx.max())
    sums = np.bincount(widx - lo, weights=vals, minlength=hi - lo + 1)
    counts = np.bincount(widx - lo, minlength=hi - lo + 1)
    expected = win_ns / step_ns
    with np.errstate(invalid="ignore", divide="ignore"):
        rsam = np.where(counts >= min_coverage * expected, sums / counts, np.nan)
    index = pd.to_datetime((np.arange(lo, hi + 1) * win_ns).astype(np.int64), unit="ns", utc=True)
    log.info("RSAM %s: %d windows of %s, %d NaN", ids[0], rsam.size, window, np.isnan(rsam).sum())
    return pd.Series(rsam, index=pd.DatetimeIndex(index, name="time"), name="rsam")


def read_rsam(path: str | Path, **mseed_params: object) -> pd.Series:
    """RSAM from a file: ``.csv`` read as ``time,value``, anything else as miniSEED."""
    if str(path).lower().endswith(".csv"):
        return read_rsam_csv(path)
    return rsam_from_mseed(path, **mseed_params)  # type: ignore[arg-type]


def _sniff(text: str) -> str:
    head = text.lstrip()[:2000].lower()
    if head.startswith("<?xml") or "<q:quakeml" in head or "<quakeml" in head:
        return "quakeml"
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if first.lstrip().startswith("#") and "|" in first:
        return "fdsn"
    return "csv"


def _event_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    df["time"] = pd.to_datetime(df["time"], utc=True).dt.as_unit("ns")
    for col in ("magnitude", "latitude", "longitude", "depth_km"):
        df[col] = df[col].astype(np.float64)
    df["event_id"] = df["event_id"].astype(str)
    return df.sort_values("time", ignore_index=True)


def _read_quakeml(path: str | Path) -> pd.DataFrame:
    try:  # parse once with lxml first: ObsPy hides the line of a syntax error
        etree.parse(str(path))
    except etree.XMLSyntaxError as err:
        raise SeismicInputError(
            f"{path}: line {err.lineno}: malformed QuakeML ({err.msg}); fix or re-export the file"
        ) from None
    try:
        catalog = obspy_read_events(str(path), format="QUAKEML")
    except (ValueError, TypeError, AttributeError) as err:
        raise SeismicInputError(f"{path}: not valid QuakeML ({err})") from None
    rows = []
    for k, ev in enumerate(catalog):
        origin = ev.preferred_origin() or (ev.origins[0] if ev.origins else None)
        if origin is None or origin.time is None:
            raise SeismicInputError(
                f"{path}: event {k + 1} ({ev.resource_id}): no origin time; every event needs one"
            )
        mag = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
        rows.append(
            {
                "time": pd.Timestamp(origin.time.ns, unit="ns", tz="UTC"),
                "magnitude": mag.mag if mag is not None and mag.mag is not None else np.nan,
                "latitude": origin.latitude if origin.latitude is not None else np.nan,
                "longitude": origin.longitude if origin.longitude is not None else np.nan,
                "depth_km": origin.depth / 1000.0 if origin.depth is not None else np.nan,
                "event_id": str(ev.resource_id),
            }
        )
    return _event_frame(rows)


def _read_fdsn_text(path: str | Path, text: str) -> pd.DataFrame:
    lines = text.splitlines()
    header_no = next(i for i, ln in enumerate(lines) if ln.strip())
    header = [f.strip().lower() for f in lines[header_no].lstrip().lstrip("#").split("|")]
    if "time" not in header:
        raise SeismicInputError(
            f"{path}: line {header_no + 1}: FDSN event header has no 'Time' field"
        )
    col = {name: header.index(name) for name in _FDSN_FIELDS if name in header}
    rows = []
    for lineno, line in enumerate(lines[header_no + 1 :], start=header_no + 2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("|")
        where = f"{path}: line {lineno}"
        if len(fields) != len(header):
            raise SeismicInputError(
                f"{where}: {len(fields)} '|'-separated fields, header has {len(header)}"
            )

        def get(name: str, fields: list[str] = fields) -> str:
            return fields[col[name]] if name in col else ""

        rows.append(
            {
                "time": _parse_time(get("time"), f"{where}, field 'Time'"),
                "magnitude": _parse_float(get("magnitude"), f"{where}, field 'Magnitude'"),
                "latitude": _parse_float(get("latitude"), f"{where}, field 'Latitude'"),
                "longitude": _parse_float(get("longitude"), f"{where}, field 'Longitude'"),
                "depth_km": _parse_float(get("depth/km"), f"{where}, field 'Depth/km'"),
                "event_id": get("eventid").strip(),
            }
        )
    return _event_frame(rows)


def _read_event_csv(path: str | Path, text: str) -> pd.DataFrame:
    header, rows = _csv_rows(path, text)
    time_col = next((c for c in ("time", "origin_time", "datetime") if c in header), None)
    if time_col is None:
        raise SeismicInputError(
            f"{path}: line 1: no 'time' column (header is {','.join(header)}); an event CSV "
            "needs a time column (ISO 8601, UTC)"
        )
    aliases = {
        "magnitude": ("magnitude", "mag"),
        "latitude": ("latitude", "lat"),
        "longitude": ("longitude", "lon"),
        "depth_km": ("depth_km", "depth"),
        "event_id": ("event_id", "eventid", "id"),
    }
    col = {k: next((header.index(a) for a in v if a in header), None) for k, v in aliases.items()}
    out = []
    for lineno, fields in rows:
        where = f"{path}: line {lineno}"
        if len(fields) != len(header):
            raise SeismicInputError(f"{where}: {len(fields)} fields, header has {len(header)}")
        row = {"time": _parse_time(fields[header.index(time_col)], f"{where}, field '{time_col}'")}
        for key, j in col.items():
            if key == "event_id":
                row[key] = fields[j].strip() if j is not None else str(lineno)
            else:
                row[key] = (
                    _parse_float(fields[j], f"{where}, field '{header[j]}'")
                    if j is not None
                    else np.nan
                )
        out.append(row)
    return _event_frame(out)


def read_events(path: str | Path) -> pd.DataFrame:
    """Seismic events -> DataFrame(:data:`EVENT_COLUMNS`), sorted by time (UTC).

    The format is recognised from the content: QuakeML (XML), FDSN event text
    (``#EventID|Time|...`` header), or CSV with a ``time`` column.
    """
    text = _read_text(path)
    kind = _sniff(text)
    log.debug("%s: reading events as %s", path, kind)
    if kind == "quakeml":
        return _read_quakeml(path)
    if kind == "fdsn":
        return _read_fdsn_text(path, text)
    return _read_event_csv(path, text)
