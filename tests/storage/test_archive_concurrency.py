"""Listing a multi-day range walks the days concurrently (a thread pool over day prefixes),
still pruned by date, each directory listed once, with the same manifest as one walk."""

from __future__ import annotations

import threading
import time

import pandas as pd

import storage.archive
from storage.archive import list_frames
from tests.helpers.store import make_camera


def test_days_are_listed_concurrently_and_each_once(tmp_path, monkeypatch):
    root = tmp_path / "archive"
    times = pd.date_range("2024-03-01", "2024-03-09", freq="3h", inclusive="left")
    for t in times:
        day = root / "cam" / f"{t:%Y}" / f"{t.day_of_year:03d}"
        day.mkdir(parents=True, exist_ok=True)
        (day / f"cam-{t:%Y%m%dT%H%M%S}Z.jpg").write_bytes(b"x")
    camera = make_camera(archive=str(root), template="avo", fields={"CAM": "cam"})

    sequential = list_frames(camera, "2024-03-02", "2024-03-08")
    running, peak, listed = 0, 0, []
    lock = threading.Lock()
    real_ls = storage.archive._ls

    def slow_ls(fs, path):  # a remote store's latency, so overlapping walks show
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            listed.append(path)
        time.sleep(0.05)
        try:
            return real_ls(fs, path)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(storage.archive, "_ls", slow_ls)
    concurrent = list_frames(camera, "2024-03-02", "2024-03-08")
    pd.testing.assert_frame_equal(concurrent, sequential)
    assert len(concurrent) == 6 * 8
    assert peak > 1, "the day walks did not overlap"
    assert len(listed) == len(set(listed)), "a directory was listed twice"
    days = sorted(p.rsplit("/", 1)[-1] for p in listed if p.rsplit("/", 2)[-2] == "2024")
    assert days == [f"{d:03d}" for d in range(62, 68)]  # 2-7 March only: pruned by date
