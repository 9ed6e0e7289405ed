"""Listing a camera's frames in ``[start, end)`` from its archive (any fsspec URL).

The manifest is a :class:`pandas.DataFrame` with columns

- ``time``: the frame's timestamp, ``datetime64[ns, UTC]`` (tz-aware UTC),
- ``path``: a path fsspec opens with the same ``storage_options`` (a plain local path for a
  local archive given without protocol, else a full URL such as ``s3://bucket/...``),
- ``size``: bytes,

sorted by time (then path). Files skipped (not an image extension, name not matching the
template, impossible date) are logged as one warning with a count and kept in
``df.attrs["skipped"]`` as a list of ``"path: reason"`` strings.

Listing is pruned by the date part of the path: only the directories of the camera's local
days that overlap the range are listed (``fs.ls`` on concrete prefixes; levels whose names
are not fixed by the date and the camera's ``fields`` are listed and filtered by the
template). A one-day run on a ten-year archive lists one day.

Local time in names is converted with the camera's ``timezone`` (zoneinfo): an ambiguous
wall time (the repeated hour when clocks go back) is read with ``fold=0``, i.e. as the
first (daylight-saving) occurrence; a nonexistent wall time (the skipped hour when clocks go
forward) is read with the offset before the change, which shifts it forward by the gap
(02:30 on a spring-forward night is 03:30 daylight time).

Templates without a full timestamp in the name (e.g. ``{*}.jpg``) take the time from EXIF
``DateTimeOriginal`` (+ ``OffsetTimeOriginal`` / ``OffsetTime``, else the camera zone),
reading only the first 64 KB of each file.
"""

from __future__ import annotations

import io
import logging
import re
import string
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import fsspec
import pandas as pd
from fsspec import AbstractFileSystem
from PIL import Image, UnidentifiedImageError

from plumenet.errors import ArchiveError
from plumenet.timeutil import TimeLike, to_utc
from storage.camera import ArchiveCamera
from storage.layouts import has_time_of_day, render_segment, template_regex

logger = logging.getLogger(__name__)

#: File extensions taken as images (lower case, with the dot).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
)
#: Bytes read from each file when the time comes from EXIF.
EXIF_HEAD_BYTES = 64 * 1024

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME = 0x9010
_OFFSET_TIME_ORIGINAL = 0x9011

COLUMNS = ("time", "path", "size")
#: Directory listings run at once (local disks and object stores both gain from overlap).
LIST_THREADS = 16


def _ls(fs: AbstractFileSystem, path: str) -> list[dict[str, Any]]:
    """One directory listing (fresh, never from fsspec's listings cache).

    Every listing of the archive goes through here, so tests can count them.
    """
    fs.invalidate_cache(path)
    return fs.ls(path, detail=True)


class _Listings:
    """Directory listings shared by concurrent day walks: each prefix is listed once, by the
    first walk that needs it, while the others wait for that one listing."""

    def __init__(self, fs: AbstractFileSystem) -> None:
        self._fs = fs
        self._lock = threading.Lock()
        self._done: dict[str, list[dict[str, Any]] | None] = {}
        self._pending: dict[str, threading.Event] = {}

    def __len__(self) -> int:
        return len(self._done)

    def get(self, prefix: str) -> list[dict[str, Any]] | None:
        """Entries under ``prefix`` (``None`` when it does not exist)."""
        with self._lock:
            if prefix in self._done:
                return self._done[prefix]
            event = self._pending.get(prefix)
            mine = event is None
            if mine:
                event = self._pending[prefix] = threading.Event()
        if not mine:
            event.wait()
            with self._lock:
                return self._done.get(prefix)
        entries: list[dict[str, Any]] | None = None
        try:
            entries = _ls(self._fs, prefix)
        except FileNotFoundError:
            entries = None
        finally:  # waiters wake to the result (or to None when the listing raised)
            with self._lock:
                self._done[prefix] = entries
                self._pending.pop(prefix).set()
        return entries


def local_days(start: pd.Timestamp, end: pd.Timestamp, tz: ZoneInfo) -> list[date]:
    """Local calendar days (camera zone) that overlap the UTC range ``[start, end)``."""
    if end <= start:
        return []
    first = start.tz_convert(tz).date()
    last = (end - pd.Timedelta(1, "ns")).tz_convert(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def local_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """Camera wall time -> UTC (ambiguous: fold=0; nonexistent: shifted forward by the gap)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _walk(
    fs: AbstractFileSystem,
    base: str,
    segments: list[str],
    day: date,
    fields: dict[str, str],
    cache: _Listings,
    out: dict[str, dict[str, Any]],
) -> None:
    """Collect the files under ``base`` that the remaining directory ``segments`` allow."""
    i = 0
    variants = [base]
    while i < len(segments):
        spellings = render_segment(segments[i], day, fields)
        if spellings is None:
            break
        variants = [f"{v}/{s}" for v in variants for s in spellings]
        i += 1
    for prefix in variants:
        entries = cache.get(prefix)
        if entries is None:
            continue
        if i == len(segments):
            for entry in entries:
                if entry.get("type") != "directory":
                    out[entry["name"]] = entry
        else:
            level = re.compile(template_regex(segments[i], fields))
            for entry in entries:
                name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
                if entry.get("type") == "directory" and level.fullmatch(name):
                    _walk(fs, entry["name"].rstrip("/"), segments[i + 1 :], day, fields, cache, out)
        return


def _parse_name_times(
    matches: list[re.Match[str]], tz: ZoneInfo
) -> tuple[list[datetime | None], list[str | None]]:
    """UTC time of each matched name, or ``None`` with a reason (impossible date)."""
    times: list[datetime | None] = []
    reasons: list[str | None] = []
    for m in matches:
        g = m.groupdict()
        try:
            year = int(g["year"])
            if g.get("doy") is not None:
                doy = int(g["doy"])
                if not 1 <= doy <= (366 if date(year, 12, 31).timetuple().tm_yday == 366 else 365):
                    raise ValueError(f"day of year {doy} does not exist in {year}")
                day = date(year, 1, 1) + timedelta(days=doy - 1)
                if g.get("month") is not None and (int(g["month"]), int(g["day"])) != (
                    day.month,
                    day.day,
                ):
                    raise ValueError("month/day disagree with day of year")
            else:
                day = date(year, int(g["month"]), int(g["day"]))
            wall = datetime(
                day.year, day.month, day.day, int(g["HH"]), int(g["MM"]), int(g.get("SS") or 0)
            )
        except ValueError as err:
            times.append(None)
            reasons.append(f"impossible date in name ({err})")
            continue
        times.append(local_to_utc(wall, tz))
        reasons.append(None)
    return times, reasons


def exif_time(head: bytes, tz: ZoneInfo) -> datetime | None:
    """UTC time from EXIF ``DateTimeOriginal`` (+ offset tags) in a file's first bytes."""
    try:
        with Image.open(io.BytesIO(head)) as img:
            exif = img.getexif()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    sub = exif.get_ifd(_EXIF_IFD)
    stamp = sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME_ORIGINAL)
    if not isinstance(stamp, str):
        return None
    try:
        wall = datetime.strptime(stamp.strip("\x00 ").strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = sub.get(_OFFSET_TIME_ORIGINAL) or sub.get(_OFFSET_TIME)
    if isinstance(offset, str):
        m = re.fullmatch(r"\s*([+-])(\d{2}):?(\d{2})\s*\x00*", offset)
        if m:
            sign = 1 if m.group(1) == "+" else -1
            delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3))) * sign
            return (wall - delta).replace(tzinfo=UTC)
    return local_to_utc(wall, tz)


def _exif_times(
    fs: AbstractFileSystem, names: list[str], tz: ZoneInfo, display: list[str], template: str
) -> list[datetime]:
    heads = fs.cat_ranges(names, [0] * len(names), [EXIF_HEAD_BYTES] * len(names))
    times = []
    for head, shown in zip(heads, display, strict=True):
        t = exif_time(head, tz) if isinstance(head, bytes) else None
        if t is None:
            raise ArchiveError(
                f"{shown}: no time in the file name (template {template!r} has no "
                "{year}/{doy}/{HH}/{MM} fields) and no EXIF DateTimeOriginal — add the time "
                "fields to the camera's `template`, or remove this file from the archive"
            )
        times.append(t)
    return times


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": pd.Series([], dtype="datetime64[ns, UTC]"),
            "path": pd.Series([], dtype=object),
            "size": pd.Series([], dtype="int64"),
        }
    )


def list_frames(
    camera: ArchiveCamera,
    start: TimeLike,
    end: TimeLike,
    *,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Frames of ``camera`` with timestamps in ``[start, end)`` (see the module docstring)."""
    t0, t1 = to_utc(start), to_utc(end)
    tz = ZoneInfo(camera.timezone)
    template = camera.path_template
    try:
        fs, root = fsspec.core.url_to_fs(camera.archive, **(storage_options or {}))
    except (ValueError, ImportError, OSError) as err:
        raise ArchiveError(
            f"camera {camera.id!r}: cannot open archive {camera.archive!r} ({type(err).__name__})"
            " — check `archive` and `storage_options`"
        ) from err
    root = root.rstrip("/")
    keep_protocol = "://" in camera.archive

    segments = template.split("/")
    dir_segments = segments[:-1]
    found: dict[str, dict[str, Any]] = {}
    cache = _Listings(fs)
    try:
        days = local_days(t0, t1, tz)
        if _date_free(dir_segments):
            days = days[:1]  # no date in the directories: one walk serves every day
        if len(days) == 1:
            _walk(fs, root, dir_segments, days[0], camera.fields, cache, found)
        else:  # the days' walks overlap; a shared level is listed once (_Listings)
            with ThreadPoolExecutor(min(LIST_THREADS, len(days)), "list") as pool:
                walks = [
                    pool.submit(_walk, fs, root, dir_segments, d, camera.fields, cache, found)
                    for d in days
                ]
                for walk in walks:
                    walk.result()
    except PermissionError as err:
        raise ArchiveError(
            f"camera {camera.id!r}: permission denied listing {camera.archive!r} — check the "
            "credentials in `storage_options`"
        ) from err
    if not found and not fs.exists(root):
        raise ArchiveError(
            f"camera {camera.id!r}: archive {camera.archive!r} does not exist — check `archive`"
        )

    pattern = re.compile(template_regex(template, camera.fields))
    skipped: list[str] = []
    names, rels, sizes, matches = [], [], [], []
    for name in sorted(found):
        shown = fs.unstrip_protocol(name) if keep_protocol else name
        rel = name[len(root) + 1 :] if name.startswith(root + "/") else name
        ext = "." + rel.rsplit(".", 1)[-1].lower() if "." in rel.rsplit("/", 1)[-1] else ""
        if ext not in IMAGE_EXTENSIONS:
            skipped.append(f"{shown}: not an image file extension")
            continue
        m = pattern.fullmatch(rel)
        if m is None:
            skipped.append(f"{shown}: does not match template {template!r}")
            continue
        names.append(name)
        rels.append(shown)
        sizes.append(int(found[name].get("size") or 0))
        matches.append(m)

    if has_time_of_day(template):
        parsed, reasons = _parse_name_times(matches, tz)
        keep = [i for i, t in enumerate(parsed) if t is not None]
        skipped += [f"{rels[i]}: {reasons[i]}" for i, t in enumerate(parsed) if t is None]
        if matches and not keep:
            raise ArchiveError(
                f"camera {camera.id!r}: every matching name has an impossible date (e.g. "
                f"{skipped[-1]}) — check `template` (e.g. {{doy}} vs {{month}}{{day}})"
            )
        times = [parsed[i] for i in keep]
        rels = [rels[i] for i in keep]
        sizes = [sizes[i] for i in keep]
    else:
        times = _exif_times(fs, names, tz, rels, template) if names else []

    if skipped:
        logger.warning(
            "camera %s: skipped %d file(s) that are not frames (first: %s)",
            camera.id,
            len(skipped),
            skipped[0],
        )
    if not times:
        df = _empty()
    else:
        df = pd.DataFrame(
            {
                "time": pd.to_datetime(times, utc=True).as_unit("ns"),
                "path": pd.Series(rels, dtype=object),
                "size": pd.Series(sizes, dtype="int64"),
            }
        )
        df = df[(df["time"] >= t0) & (df["time"] < t1)]
        df = df.sort_values(["time", "path"], kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = skipped
    logger.info(
        "camera %s: %d frame(s) in [%s, %s) from %d listing(s)",
        camera.id,
        len(df),
        t0.isoformat(),
        t1.isoformat(),
        len(cache),
    )
    return df


def _date_free(segments: Iterable[str]) -> bool:
    """Whether no directory level names a date field."""
    for seg in segments:
        for _, name, _, _ in string.Formatter().parse(seg):
            if name in {"year", "month", "day", "doy"}:
                return False
    return True
