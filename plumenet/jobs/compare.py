"""The comparison job: store and seismic files in, comparison files out.

:func:`run_compare` (behind ``plumenet compare`` and the ``compare`` flow) recomputes
one camera's catalogue from the store, reads RSAM and events with
:mod:`storage.seismic`, runs :func:`plumenet.science.compare.compare` and writes
``comparison.json``, the CSV tables and the figures. Outputs: docs/catalogue.md,
section 6.4.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from plumenet.config import Config, load_config
from plumenet.errors import ConfigError
from plumenet.jobs.catalogue import load_camera
from plumenet.science import figures as fig
from plumenet.science.activity import catalogue, split_params
from plumenet.science.compare import compare, series_variable
from plumenet.science.observability import activity_fractions
from plumenet.science.plume import has_metres
from plumenet.timeutil import CSV_TIME_FORMAT
from storage import catalogue as files
from storage import seismic

log = logging.getLogger(__name__)

_COMPARE_KEYS = (
    "cls", "series", "variable", "max_lag", "lags", "windows", "n_surrogates", "n_shuffles",
    "epoch_before", "epoch_after", "seed", "detrend", "deseason", "surrogates", "eca_null",
)  # fmt: skip

#: Options of :func:`storage.seismic.rsam_from_mseed` that ``run_compare`` passes on.
MSEED_KEYS = ("seed_id", "freqmin", "freqmax", "window", "corners", "min_coverage")


def read_rsam_input(path: str | Path, mseed: dict[str, object]) -> pd.Series:
    """RSAM from a CSV or a miniSEED file; miniSEED options with a CSV are an error."""
    if str(path).lower().endswith(".csv"):
        if mseed:
            raise ConfigError(
                f"{path} is an RSAM CSV; the miniSEED options {sorted(mseed)} apply only to "
                "miniSEED input — drop them or pass the waveform file"
            )
        return seismic.read_rsam_csv(path)
    return seismic.rsam_from_mseed(path, **mseed)  # type: ignore[arg-type]


def run_compare(
    config: object,
    camera: str,
    rsam: str | Path | pd.Series | None = None,
    events: str | Path | pd.DataFrame | None = None,
    out: str | Path = "comparison",
    *,
    start: object = None,
    end: object = None,
    freq: str = "1h",
    figures: bool = True,
    mseed: dict[str, object] | None = None,
    **params: object,
) -> dict[str, str]:
    """Compare one camera's activity (recomputed from the store) with seismic data.

    ``rsam``: a ``time,value`` CSV, a miniSEED file, or a Series; ``events``: QuakeML,
    FDSN text or CSV, or a DataFrame with ``time``. ``params``:
    :func:`plumenet.science.compare.compare` options and catalogue thresholds
    (:class:`plumenet.science.episodes.EpisodeParams` /
    :class:`plumenet.science.observability.ObservabilityParams` fields). Writes
    ``comparison.json``, ``xcorr.csv``, ``coincidence.csv``, ``epoch.csv`` and PNGs under
    ``out``; returns name -> path. ``mseed``: :data:`MSEED_KEYS` options for RSAM from
    miniSEED (channel ``seed_id``, band ``freqmin``-``freqmax`` Hz, RSAM ``window``).
    ``freq`` is the bin of activity and RSAM. ``series="height"`` correlates the bins'
    highest plume top (metres above the vent) with RSAM instead of the activity share.
    """
    if rsam is None and events is None:
        raise ConfigError("nothing to compare with — pass an RSAM file (--rsam) and/or events")
    cfg = config if isinstance(config, Config) else load_config(config)  # type: ignore[arg-type]
    cfg.camera(camera)
    cmp_params = {k: v for k, v in params.items() if k in _COMPARE_KEYS}
    ep, ob = split_params({k: v for k, v in params.items() if k not in _COMPARE_KEYS})
    mseed = {k: v for k, v in (mseed or {}).items() if v is not None}
    unknown = sorted(set(mseed) - set(MSEED_KEYS))
    if unknown:
        raise ConfigError(f"unknown miniSEED option(s) {unknown}; valid: {list(MSEED_KEYS)}")
    try:
        series_variable(
            str(cmp_params.get("series", "share")), str(cmp_params.get("cls", "any_emission"))
        )
    except ValueError as err:
        raise ConfigError(f"{err} (--series)") from None
    try:
        pd.Timedelta(freq)
    except ValueError:
        raise ConfigError(f"--freq {freq!r} is not a duration; use e.g. 10min or 1h") from None
    rsam_series = (
        rsam if isinstance(rsam, pd.Series) or rsam is None else read_rsam_input(rsam, mseed)
    )
    event_table = (
        events if isinstance(events, pd.DataFrame) or events is None
        else seismic.read_events(events)
    )  # fmt: skip
    ds = load_camera(cfg.store, camera, storage_options=cfg.storage_options, start=start, end=end)
    res = catalogue(ds, camera=camera, episode_params=ep, observability_params=ob, freqs=(freq,))
    activity = res[f"activity_{freq.lower()}"]
    if cmp_params.get("series") == "height" and not has_metres(res["heights"]):
        raise ConfigError(
            f"camera {camera!r} has no plume heights in metres in {cfg.store} for this range "
            "— give it `geometry` in cameras.yaml and run plumenet backfill --overwrite "
            "(or compare the activity share: --series share)"
        )
    result = compare(activity, rsam_series, event_table, res["episodes"], **cmp_params)
    tables = result.pop("tables")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "camera": camera,
        "activity_bins": freq,
        "rsam_options": mseed,
        "n_episodes": int((res["episodes"]["class"] == result["settings"]["episode_class"]).sum()),
        **result,
    }
    written = {"comparison_json": str(files.write_json(out_dir / "comparison.json", payload))}
    for name, table in tables.items():
        path = out_dir / f"{name}.csv"
        files.utc_times(table).to_csv(path, index=False, date_format=CSV_TIME_FORMAT)
        written[f"{name}_csv"] = str(path)
    if figures:
        if "xcorr" in tables:
            best = result["xcorr"]["best_lag_s"]  # type: ignore[index]
            written["xcorr_png"] = str(
                fig.plot_xcorr(
                    tables["xcorr"], out_dir / "xcorr.png", best_lag_s=best,
                    refined_lag_s=result["xcorr"]["best_lag_refined_s"],  # type: ignore[index]
                )
            )  # fmt: skip
        if "epoch" in tables:
            written["epoch_png"] = str(fig.plot_epoch(tables["epoch"], out_dir / "epoch.png"))
        fr = activity_fractions(ds, res["observable"].values)
        written["timeline_png"] = str(
            fig.plot_timeline(
                fr,
                res["episodes"],
                out_dir / "timeline.png",
                rsam=rsam_series,
                title=camera,
                heights=res["heights"],
            )
        )
    log.info("camera %s: comparison written to %s", camera, out_dir)
    return written
