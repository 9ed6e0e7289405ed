"""Writing synthetic camera archives with ground truth: frames in real layouts, truth files.

``write_archive`` renders one camera's frames (``plumenet.synthetic.render``) from a timeline
of eruptive episodes (``plumenet.synthetic.timeline``), writes them as JPEG files at the paths
of a real archive layout (``storage.layouts``) to any fsspec URL, and writes the ground truth
beside them under ``<url>/truth/`` (or ``truth_url``); ``read_truth`` loads it back:

- ``episodes.csv``: ``episode, class, onset, end`` (model class names; times UTC)
- ``fractions.csv``: one row per written file: ``time`` (frame time), ``slot``, ``path``
  (relative to the archive root), ``url``, the six model-class fractions of the true label
  resized to 518x518 (NaN for broken files), ``night``, ``cloud_cover``, ``obstructed``,
  ``active`` (episode ids), ``broken`` (kind or empty)
- ``rsam.csv``: ``time, value`` every 10 min; it rises ``rsam_lag`` BEFORE each visible onset
- ``events.csv`` (``time, magnitude``) and ``events.xml`` (the same events as QuakeML)
- ``truth.json``: layout, template, fields, cadence, start, end, seed, ``rsam_lag_s``, counts
  and the list of broken files with their kind

All times in the tables are naive timestamps in UTC. ``end`` is exclusive.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import fsspec
import numpy as np
import pandas as pd
from fsspec.implementations.local import LocalFileSystem
from PIL import Image

from plumenet.classes import MODEL_CLASSES
from plumenet.errors import ConfigError
from plumenet.synthetic.frames import episode_variants, frame_spec, label_fractions
from plumenet.synthetic.render import render_scene
from plumenet.synthetic.seismic import events_quakeml, make_events, make_rsam
from plumenet.synthetic.timeline import make_episodes, make_timeline, parse_cadence, parse_window
from storage.layouts import BUILTIN_TEMPLATES, format_path, resolve_template, template_fields

logger = logging.getLogger(__name__)

#: Kinds of broken files ``write_archive(broken=N)`` plants, in planting order.
BROKEN_KINDS: tuple[str, ...] = ("truncated", "empty", "not_image", "misnamed")
_BATCH = 64


@dataclass
class ArchiveTruth:
    """What ``write_archive`` wrote and the ground truth to compare results with."""

    url: str
    layout: str
    template: str
    fields: dict[str, str]
    episodes: pd.DataFrame
    fractions: pd.DataFrame
    rsam: pd.DataFrame
    events: pd.DataFrame
    rsam_lag_s: float
    broken: list[tuple[str, str]] = field(default_factory=list)
    truth_url: str = ""
    camera: str = "SYN"
    cadence: str = "10min"
    tz: str = "UTC"


# --------------------------------------------------------------------------- files


def _jpeg(rgb: np.ndarray, when: pd.Timestamp, quality: int = 85) -> bytes:
    """JPEG bytes with EXIF DateTimeOriginal / OffsetTimeOriginal (UTC)."""
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    sub[0x9011] = "+00:00"  # OffsetTimeOriginal
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, exif=exif)
    return buf.getvalue()


def _broken_bytes(kind: str, good: bytes, rng: np.random.Generator) -> bytes:
    if kind == "truncated":
        return good[: max(len(good) // 3, 16)]
    if kind == "empty":
        return b""
    if kind == "not_image":
        return b"<html><body>503 Service Unavailable</body></html>\n" + rng.bytes(64)
    return good  # misnamed: a good image under a name the template does not match


def _misnamed(path: str) -> str:
    stem = path[: -len(".jpg")] if path.endswith(".jpg") else path
    return stem + ".jpeg.tmp"


def _default_fields(template: str, camera: str) -> dict[str, str]:
    site, _, view = camera.partition(".")
    known = {"SITE": site, "VC": view or "01", "CAM": camera}
    return {
        name: known[name] for name in template_fields(template) if name in known and name.isupper()
    }


# --------------------------------------------------------------------------- writing


def _csv(frame: pd.DataFrame, date_format: str = "%Y-%m-%dT%H:%M:%S") -> bytes:
    return frame.to_csv(index=False, date_format=date_format).encode()


def _pipe(fs: Any, files: Mapping[str, bytes]) -> None:
    """Write a batch of files; local file systems need their folders first."""
    if isinstance(fs, LocalFileSystem):
        for parent in {p.rsplit("/", 1)[0] for p in files if "/" in p}:
            fs.makedirs(parent, exist_ok=True)
    fs.pipe(dict(files))


def _batches(items: Iterable[tuple[str, bytes]], size: int) -> Iterable[dict[str, bytes]]:
    batch: dict[str, bytes] = {}
    for path, data in items:
        batch[path] = data
        if len(batch) >= size:
            yield batch
            batch = {}
    if batch:
        yield batch


def write_archive(
    url: str,
    *,
    layout: str,
    start: str | datetime | pd.Timestamp,
    end: str | datetime | pd.Timestamp,
    cadence: str = "10min",
    seed: int = 0,
    broken: int = 0,
    storage_options: Mapping[str, Any] | None = None,
    size: tuple[int, int] = (640, 480),
    fields: Mapping[str, str] | None = None,
    camera: str = "SYN",
    tz: str = "UTC",
    rsam_lag: str | pd.Timedelta = "30min",
    missing: float = 0.02,
    jitter_s: int = 7,
    truth_url: str | None = None,
    workers: int | None = None,
) -> ArchiveTruth:
    """Render and write one camera's archive in ``layout`` over ``[start, end)``.

    ``layout``: ``geonet``, ``avo``, ``flat`` or a literal template. Path fields default from
    ``camera`` (``WIZ.01`` -> ``SITE=WIZ, VC=01``; ``CAM=camera``). Timestamps in paths are
    the frame time in ``tz``, 0 to ``jitter_s`` seconds after the slot; about ``missing`` of
    the slots (a fraction) have no frame. ``broken`` files are planted among the frames,
    cycling through :data:`BROKEN_KINDS`. The truth goes to ``truth_url`` (default ``<url>/truth``).
    """
    template = resolve_template(layout)
    if "{" not in template:
        raise ConfigError(
            f"layout {layout!r} is neither a built-in layout ({', '.join(BUILTIN_TEMPLATES)}) "
            "nor a template with {year}... fields"
        )
    t0, t1 = parse_window(start, end)
    step = parse_cadence(cadence)
    lag = parse_cadence(rsam_lag)
    if broken < 0:
        raise ConfigError(f"broken={broken} must be 0 or more")
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise ConfigError(f"frame size {width}x{height} is too small; use e.g. 640x480")
    path_fields = dict(_default_fields(template, camera))
    path_fields.update(fields or {})
    try:
        format_path(template, datetime(2000, 1, 1), path_fields)
    except (ValueError, KeyError, IndexError) as err:
        raise ConfigError(f"layout {layout!r}: {err}") from err

    options = dict(storage_options or {})
    fs, root = fsspec.core.url_to_fs(url, **options)
    root = root.rstrip("/")
    truth_root_url = truth_url or f"{url.rstrip('/')}/truth"
    tfs, troot = fsspec.core.url_to_fs(truth_root_url, **options)
    troot = troot.rstrip("/")

    episodes = make_episodes(t0, t1, seed)
    timeline = make_timeline(t0, t1, step, seed, tz=tz, episodes=episodes)
    variants = episode_variants(episodes, seed)
    # one fixed view per (seed, camera): every frame of the camera shows the same volcano
    view_seed = int(np.random.default_rng([seed, 2, zlib.crc32(camera.encode())]).integers(2**31))

    rng = np.random.default_rng([seed, 4])
    n_slots = len(timeline)
    keep = rng.random(n_slots) >= missing
    jitter = rng.integers(0, max(int(jitter_s), 0) + 1, n_slots)
    written = np.flatnonzero(keep)
    if broken > len(written):
        raise ConfigError(
            f"broken={broken} but only {len(written)} frames are written; lower --broken "
            "or widen --start/--end"
        )
    broken_at = {
        int(i): BROKEN_KINDS[k % len(BROKEN_KINDS)]
        for k, i in enumerate(sorted(rng.choice(written, size=broken, replace=False)))
    }

    def one(i: int) -> tuple[str, bytes, dict[str, Any]]:
        slot = timeline.iloc[i]
        when = slot["time"] + pd.Timedelta(seconds=int(jitter[i]))
        local = when.tz_localize("UTC").tz_convert(tz).tz_localize(None).to_pydatetime()
        rel = format_path(template, local, path_fields)
        spec = frame_spec(slot, i, seed, view_seed, (width, height), variants)
        rgb, label = render_scene(spec)
        data = _jpeg(rgb, when)
        kind = broken_at.get(i, "")
        fractions = label_fractions(label)
        if kind:
            data = _broken_bytes(kind, data, np.random.default_rng([seed, 9, i]))
            fractions = np.full(len(MODEL_CLASSES), np.nan)
            if kind == "misnamed":
                rel = _misnamed(rel)
        row = {
            "time": when,
            "slot": slot["time"],
            "path": rel,
            "url": f"{url.rstrip('/')}/{rel}",
            **{c: round(float(f), 6) for c, f in zip(MODEL_CLASSES, fractions, strict=True)},
            "night": bool(slot["night"]),
            "cloud_cover": float(slot["cloud_cover"]),
            "obstructed": bool(slot["obstructed"]),
            "active": slot["active"],
            "broken": kind,
        }
        return rel, data, row

    n_workers = workers or min(4, os.cpu_count() or 1)
    rows: list[dict[str, Any]] = []

    def produce() -> Iterable[tuple[str, bytes]]:
        if n_workers == 1:
            for rel, data, row in map(one, written.tolist()):
                rows.append(row)
                yield f"{root}/{rel}", data
            return
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for rel, data, row in pool.map(one, written.tolist()):
                rows.append(row)
                yield f"{root}/{rel}", data

    for batch in _batches(produce(), _BATCH):
        _pipe(fs, batch)
    fractions = pd.DataFrame(rows)
    logger.info("wrote %d frames (%d broken) to %s", len(rows), broken, url)

    rsam = make_rsam(episodes, t0, t1, seed, lag)
    events = make_events(episodes, t0, t1, seed)
    broken_list = [(r["path"], r["broken"]) for r in rows if r["broken"]]
    meta = {
        "url": url,
        "layout": layout,
        "template": template,
        "fields": path_fields,
        "camera": camera,
        "cadence": str(cadence),
        "tz": tz,
        "start": t0.isoformat(),
        "end": t1.isoformat(),
        "time_zone_of_tables": "UTC",
        "seed": seed,
        "size": [width, height],
        "rsam_lag_s": lag.total_seconds(),
        "episodes": len(episodes),
        "slots": n_slots,
        "frames": len(rows),
        "missing": int(n_slots - len(rows)),
        "broken": [{"path": p, "kind": k} for p, k in broken_list],
    }
    truth_files = {
        f"{troot}/episodes.csv": _csv(episodes),
        f"{troot}/fractions.csv": _csv(fractions),
        f"{troot}/rsam.csv": _csv(rsam),
        f"{troot}/events.csv": _csv(events, "%Y-%m-%dT%H:%M:%S.%f"),
        f"{troot}/events.xml": events_quakeml(events),
        f"{troot}/truth.json": json.dumps(meta, indent=2).encode(),
    }
    _pipe(tfs, truth_files)
    return ArchiveTruth(
        url=url,
        layout=layout,
        template=template,
        fields=path_fields,
        episodes=episodes,
        fractions=fractions,
        rsam=rsam,
        events=events,
        rsam_lag_s=lag.total_seconds(),
        broken=broken_list,
        truth_url=truth_root_url,
        camera=camera,
        cadence=str(cadence),
        tz=tz,
    )


def read_truth(truth_url: str, storage_options: Mapping[str, Any] | None = None) -> ArchiveTruth:
    """Load the ground truth ``write_archive`` wrote at ``truth_url`` (``<url>/truth``)."""
    fs, root = fsspec.core.url_to_fs(truth_url, **dict(storage_options or {}))
    root = root.rstrip("/")
    try:
        meta = json.loads(fs.cat(f"{root}/truth.json"))
    except FileNotFoundError as err:
        raise ConfigError(
            f"no truth.json under {truth_url}; point at the truth/ folder written by "
            "`plumenet synth`"
        ) from err

    def table(name: str, dates: list[str], text: tuple[str, ...] = ()) -> pd.DataFrame:
        with fs.open(f"{root}/{name}", "rb") as fh:
            return pd.read_csv(fh, parse_dates=dates, dtype=dict.fromkeys(text, object))

    fractions = table("fractions.csv", ["time", "slot"], ("active", "broken"))
    fractions["broken"] = fractions["broken"].fillna("").astype(str)
    fractions["active"] = fractions["active"].fillna("").astype(str)
    return ArchiveTruth(
        url=meta["url"],
        layout=meta["layout"],
        template=meta["template"],
        fields=meta["fields"],
        episodes=table("episodes.csv", ["onset", "end"]),
        fractions=fractions,
        rsam=table("rsam.csv", ["time"]),
        events=table("events.csv", ["time"]),
        rsam_lag_s=float(meta["rsam_lag_s"]),
        broken=[(b["path"], b["kind"]) for b in meta["broken"]],
        truth_url=truth_url,
        camera=meta["camera"],
        cadence=meta["cadence"],
        tz=meta["tz"],
    )
