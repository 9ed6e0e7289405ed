"""Seismic readers and RSAM, on files written in the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from plumenet.errors import SeismicInputError
from storage import seismic


def _write_mseed(path, data_parts, fs=20.0, start="2024-01-01T00:00:00"):
    from obspy import Stream, Trace, UTCDateTime

    stream = Stream()
    for offset_s, data in data_parts:
        tr = Trace(data=data.astype(np.float64))
        tr.stats.network, tr.stats.station, tr.stats.channel = "NZ", "WIZ", "HHZ"
        tr.stats.sampling_rate = fs
        tr.stats.starttime = UTCDateTime(start) + offset_s
        stream += tr
    stream.write(str(path), format="MSEED", encoding="FLOAT64")
    return path


def _independent_rsam(data, fs, win_samples):
    """Linear detrend + 4-pole causal Butterworth band-pass 2-5 Hz + mean |x| per window."""
    x = signal.detrend(data, type="linear")
    sos = signal.butter(4, [2.0 / (fs / 2), 5.0 / (fs / 2)], btype="band", output="sos")
    y = np.abs(signal.sosfilt(sos, x))
    n = y.size // win_samples
    return y[: n * win_samples].reshape(n, win_samples).mean(axis=1)


def test_rsam_from_mseed_equals_scipy(tmp_path, rng):
    fs = 20.0
    n = int(fs * 3600)  # one hour -> six 10-min windows
    t = np.arange(n) / fs
    data = rng.normal(0, 1, n) + 5 * np.sin(2 * np.pi * 3.0 * t) * (t / t[-1]) + 0.001 * t
    path = _write_mseed(tmp_path / "wiz.mseed", [(0, data)], fs=fs)
    rsam = seismic.rsam_from_mseed(path, window="10min")
    expected = _independent_rsam(data, fs, int(600 * fs))
    assert len(rsam) == 6
    np.testing.assert_allclose(rsam.to_numpy(), expected, rtol=1e-9)
    assert rsam.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert rsam.index.freq is None or rsam.index.freqstr in ("10min", "10T")
    assert str(rsam.index.tz) == "UTC"


def test_rsam_gap_windows_are_nan_and_segments_filtered_apart(tmp_path, rng):
    fs = 20.0
    seg = int(fs * 1200)  # 20 min, gap of 20 min, then 20 min
    a, b = rng.normal(0, 1, seg), rng.normal(0, 3, seg)
    path = _write_mseed(tmp_path / "gap.mseed", [(0, a), (2400, b)], fs=fs)
    rsam = seismic.rsam_from_mseed(path, window="10min")
    w = int(600 * fs)
    assert len(rsam) == 6
    assert rsam.isna().tolist() == [False, False, True, True, False, False]
    np.testing.assert_allclose(rsam.iloc[:2], _independent_rsam(a, fs, w), rtol=1e-9)
    np.testing.assert_allclose(rsam.iloc[4:], _independent_rsam(b, fs, w), rtol=1e-9)


def test_rsam_from_mseed_errors(tmp_path):
    bad = tmp_path / "bad.mseed"
    bad.write_bytes(b"this is not seed data at all")
    with pytest.raises(SeismicInputError, match=r"bad\.mseed: not readable as miniSEED"):
        seismic.rsam_from_mseed(bad)
    with pytest.raises(SeismicInputError, match="no such file"):
        seismic.rsam_from_mseed(tmp_path / "missing.mseed")


def test_read_rsam_csv(tmp_path):
    path = tmp_path / "rsam.csv"
    path.write_text("time,value\n2024-01-01T00:10:00Z,2.5\n2024-01-01T00:00:00,1.5\n")
    rsam = seismic.read_rsam_csv(path)
    assert rsam.tolist() == [1.5, 2.5]
    assert rsam.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert seismic.read_rsam(path).equals(rsam)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n2024-01-01,1\n2024-01-01T00:10,abc\n", r"rsam\.csv: line 3, field 'value'"),
        ("time,value\nnot-a-time,1\n", r"rsam\.csv: line 2, field 'time'"),
        ("when,value\n2024-01-01,1\n", r"rsam\.csv: line 1: no column 'time'"),
        ("time,value\n2024-01-01,1,7\n", r"rsam\.csv: line 2: 3 fields"),
    ],
)
def test_read_rsam_csv_malformed(tmp_path, text, message):
    path = tmp_path / "rsam.csv"
    path.write_text(text)
    with pytest.raises(SeismicInputError, match=message):
        seismic.read_rsam_csv(path)


def _quakeml(path, times_mags):
    from obspy import UTCDateTime
    from obspy.core.event import Catalog, Event, Magnitude, Origin

    cat = Catalog()
    for t, m in times_mags:
        origin = Origin(time=UTCDateTime(t), latitude=-37.5, longitude=177.2, depth=3000.0)
        ev = Event(origins=[origin], magnitudes=[Magnitude(mag=m)])
        ev.preferred_origin_id = origin.resource_id
        cat.append(ev)
    cat.write(str(path), format="QUAKEML")
    return path


def test_read_events_quakeml(tmp_path):
    path = _quakeml(tmp_path / "events.xml", [("2024-01-02T03:04:05", 2.1), ("2024-01-01", 1.0)])
    ev = seismic.read_events(path)
    assert list(ev.columns) == list(seismic.EVENT_COLUMNS)
    assert ev["time"].tolist() == [
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-02T03:04:05", tz="UTC"),
    ]
    assert ev["magnitude"].tolist() == [1.0, 2.1]
    assert ev["depth_km"].tolist() == [3.0, 3.0]


def test_read_events_quakeml_malformed(tmp_path):
    path = _quakeml(tmp_path / "events.xml", [("2024-01-01", 1.0)])
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(SeismicInputError, match=r"events\.xml: line \d+: malformed QuakeML"):
        seismic.read_events(path)


FDSN = (
    "#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
    "MagType|Magnitude|MagAuthor|EventLocationName\n"
    """2024p000001|2024-01-01T00:30:00.5|-37.52|177.18|5.1|GNS|GeoNet|GNS|x|ML|2.3|GNS|Whakaari
2024p000002|2024-01-01T00:10:00|-37.50|177.20|4.0|GNS|GeoNet|GNS|y|ML||GNS|Whakaari
"""
)


def test_read_events_fdsn_text(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text(FDSN)
    ev = seismic.read_events(path)
    assert ev["event_id"].tolist() == ["2024p000002", "2024p000001"]
    assert ev["time"].iloc[1] == pd.Timestamp("2024-01-01T00:30:00.5", tz="UTC")
    assert np.isnan(ev["magnitude"].iloc[0])
    assert ev["magnitude"].iloc[1] == 2.3


def test_read_events_fdsn_malformed(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text(FDSN.replace("|-37.50|", "|south|"))
    with pytest.raises(SeismicInputError, match=r"events\.txt: line 3, field 'Latitude'"):
        seismic.read_events(path)
    path.write_text(FDSN.replace("|ML|2.3", "|ML"))
    with pytest.raises(SeismicInputError, match=r"events\.txt: line 2: 12 '\|'-separated fields"):
        seismic.read_events(path)


def test_read_events_csv(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("Time,Mag\n2024-01-01T01:00:00+01:00,1.5\n2024-01-01T02:00:00Z,0.5\n")
    ev = seismic.read_events(path)
    assert ev["time"].tolist() == [
        pd.Timestamp("2024-01-01T00:00", tz="UTC"),
        pd.Timestamp("2024-01-01T02:00", tz="UTC"),
    ]
    assert ev["magnitude"].tolist() == [1.5, 0.5]


def test_read_events_csv_malformed(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("time,mag\n2024-01-01,1\n2024-13-45,2\n")
    with pytest.raises(SeismicInputError, match=r"events\.csv: line 3, field 'time'"):
        seismic.read_events(path)
    path.write_text("date,mag\n2024-01-01,1\n")
    with pytest.raises(SeismicInputError, match=r"events\.csv: line 1: no 'time' column"):
        seismic.read_events(path)
