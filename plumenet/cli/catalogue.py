"""``plumenet catalogue`` and ``plumenet compare``: activity catalogues and seismic comparison."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from plumenet.cli.options import config_option, make_out_dir

log = logging.getLogger(__name__)


def _parse_threshold(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> float | dict[str, float] | None:
    """``0.02`` (all classes) or ``0.02,lava=0.003`` (a default plus per-class values)."""
    if value is None:
        return None
    base: float | None = None
    per_class: dict[str, float] = {}
    try:
        for item in (v.strip() for v in value.split(",") if v.strip()):
            if "=" in item:
                name, number = item.split("=", 1)
                per_class[name.strip()] = float(number)
            else:
                base = float(item)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a threshold — use a fraction (0.02) or e.g. 0.02,lava=0.003"
        ) from None
    if not per_class:
        return base
    if base is not None:
        from plumenet.science.observability import ACTIVITY_CLASSES

        per_class = {c: per_class.get(c, base) for c in ACTIVITY_CLASSES} | per_class
    return per_class


def _thresholds(f: click.decorators.FC) -> click.decorators.FC:
    """Episode and observability options shared by both commands (defaults: docs/catalogue.md)."""
    options = [
        click.option(
            "--on",
            callback=_parse_threshold,
            help="Episode starts at fraction >= ON (e.g. 0.02 or 0.02,lava=0.003).",
        ),
        click.option(
            "--off", callback=_parse_threshold, help="Episode ends below OFF (same form as --on)."
        ),
        click.option("--min-duration", default=None, help="Shortest episode kept (e.g. 10min)."),
        click.option(
            "--max-gap", default=None, help="Longest observed quiet stretch merged (e.g. 30min)."
        ),
        click.option(
            "--max-blind",
            default=None,
            help="Longest unobservable stretch an episode continues across (default 3h; "
            "'none': never split).",
        ),
        click.option(
            "--dark-threshold", type=float, default=None, help="Brightness below this is night."
        ),
        click.option(
            "--night-sun-elevation",
            type=float,
            default=None,
            help="With the sun known: dark frames are night only with the sun below this "
            "(degrees; default -6, civil twilight), else obstructed.",
        ),
        click.option(
            "--baseline",
            type=float,
            default=None,
            help="Clear-view land share (default: learned from the data).",
        ),
        click.option(
            "--land-drop",
            type=float,
            default=None,
            help="View obstructed when land < LAND_DROP x baseline (default 0.5).",
        ),
        click.option("--start", default=None, help="First time to catalogue (UTC)."),
        click.option("--end", default=None, help="End of the range (UTC, exclusive)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _params(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


@click.command("catalogue")
@config_option("config_path")
@click.option("--camera", "cameras", multiple=True, help="Camera id (repeatable; default all).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("catalogue"),
    show_default=True,
    help="Folder for tables and figures (one subfolder per camera).",
)
@click.option("--no-store", is_flag=True, help="Do not write the store's <camera>/activity group.")
@_thresholds
def catalogue_cmd(
    config_path: str,
    cameras: tuple[str, ...],
    out: Path,
    no_store: bool,
    on: float | dict[str, float] | None,
    off: float | dict[str, float] | None,
    min_duration: str | None,
    max_gap: str | None,
    max_blind: str | None,
    dark_threshold: float | None,
    night_sun_elevation: float | None,
    baseline: float | None,
    land_drop: float | None,
    start: str | None,
    end: str | None,
) -> None:
    """Emission episodes and hourly/daily activity per camera, from the store."""
    import pandas as pd
    from rich.console import Console

    from plumenet.errors import ConfigError
    from plumenet.jobs.catalogue import run_catalogue

    make_out_dir(out)
    params = _params(
        on=on, off=off, min_duration=min_duration, max_gap=max_gap, max_blind=max_blind,
        dark_threshold=dark_threshold, baseline=baseline, land_drop=land_drop,
        night_sun_elevation=night_sun_elevation,
    )  # fmt: skip
    try:
        results = run_catalogue(
            config_path,
            list(cameras) or None,
            out,
            start=start,
            end=end,
            write_store=not no_store,
            **params,
        )
    except ValueError as err:  # thresholds that contradict each other
        raise ConfigError(f"{err} — check the catalogue options") from None
    console = Console()
    for cam, paths in results.items():
        episodes = pd.read_parquet(paths["episodes_parquet"])
        counts = episodes["class"].value_counts().to_dict()
        console.print(f"[bold]{cam}[/]: {len(episodes)} episodes {counts}")
        for name, path in paths.items():
            console.print(f"  {name}: {path}")


@click.command("compare")
@config_option("config_path")
@click.option("--camera", required=True, help="Camera id.")
@click.option(
    "--rsam",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="RSAM: time,value CSV, or miniSEED (RSAM computed, 2-5 Hz, 10-min windows).",
)
@click.option(
    "--events",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Seismic events: QuakeML, FDSN event text or CSV with a time column.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("comparison"),
    show_default=True,
    help="Folder for comparison.json, CSV tables and figures.",
)
@click.option(
    "--series",
    type=click.Choice(["share", "height"]),
    default="share",
    show_default=True,
    help="Correlated with RSAM: the share of frames with emission, or the highest plume top "
    "per bin (metres above the vent; needs camera geometry).",
)
@click.option("--max-lag", default="72h", show_default=True, help="Largest |lag| correlated.")
@click.option(
    "--window",
    "windows",
    multiple=True,
    help="Coincidence window (repeatable; default 1h, 6h, 1D).",
)
@click.option(
    "--lag", "lags", multiple=True, help="Coincidence lag (repeatable; default 0h, 6h, 1D)."
)
@click.option("--surrogates", default=499, show_default=True, help="Surrogates for the p-value.")
@click.option(
    "--surrogate-method",
    type=click.Choice(["auto", "rotation", "phase", "iaaft"]),
    default="auto",
    show_default=True,
    help="Correlation surrogates: RSAM turned round the record by whole days (keeps swarms "
    "and tails; auto from 40 days at ±12 h, 280 at ±72 h), phase-randomised, or IAAFT.",
)
@click.option(
    "--shuffles", default=999, show_default=True, help="ECA surrogates (at most, for rotation)."
)
@click.option(
    "--eca-null",
    type=click.Choice(["auto", "rotation", "day-shift"]),
    default="auto",
    show_default=True,
    help="ECA surrogates: turn the events round the record by whole days (keeps clustering), "
    "or move each event to a random day (day-shift); auto: rotation from 60 days on.",
)
@click.option("--seed", default=0, show_default=True, help="Random seed of surrogates/shuffles.")
@click.option(
    "--freq", default="1h", show_default=True, help="Bin of activity and RSAM (e.g. 10min)."
)
@click.option(
    "--detrend",
    type=click.Choice(["auto", "linear", "difference", "none"]),
    default="auto",
    show_default=True,
    help="Before correlating: remove lines, take differences, or (auto) choose.",
)
@click.option(
    "--deseason",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Remove the mean daily cycle (auto: when a diurnal peak is found).",
)
@click.option("--seed-id", default=None, help="miniSEED channel, e.g. XX.STA..HHZ.")
@click.option("--freqmin", type=float, default=None, help="miniSEED RSAM band low edge (Hz, 2).")
@click.option("--freqmax", type=float, default=None, help="miniSEED RSAM band high edge (Hz, 5).")
@click.option("--rsam-window", default=None, help="miniSEED RSAM window (default 10min).")
@_thresholds
def compare_cmd(
    config_path: str,
    camera: str,
    rsam: Path | None,
    events: Path | None,
    out: Path,
    series: str,
    max_lag: str,
    windows: tuple[str, ...],
    lags: tuple[str, ...],
    surrogates: int,
    surrogate_method: str,
    shuffles: int,
    eca_null: str,
    seed: int,
    freq: str,
    detrend: str,
    deseason: str,
    seed_id: str | None,
    freqmin: float | None,
    freqmax: float | None,
    rsam_window: str | None,
    on: float | dict[str, float] | None,
    off: float | dict[str, float] | None,
    min_duration: str | None,
    max_gap: str | None,
    max_blind: str | None,
    dark_threshold: float | None,
    night_sun_elevation: float | None,
    baseline: float | None,
    land_drop: float | None,
    start: str | None,
    end: str | None,
) -> None:
    """Compare a camera's activity with RSAM and a seismic event catalogue."""
    import json

    from rich.console import Console

    from plumenet.errors import ConfigError
    from plumenet.jobs.compare import run_compare

    make_out_dir(out)
    params = _params(
        on=on, off=off, min_duration=min_duration, max_gap=max_gap, max_blind=max_blind,
        dark_threshold=dark_threshold, baseline=baseline, land_drop=land_drop,
        night_sun_elevation=night_sun_elevation,
    )  # fmt: skip
    if windows:
        params["windows"] = windows
    if lags:
        params["lags"] = lags
    try:
        paths = run_compare(
            config_path,
            camera,
            rsam=rsam,
            events=events,
            out=out,
            start=start,
            end=end,
            series=series,
            max_lag=max_lag,
            n_surrogates=surrogates,
            n_shuffles=shuffles,
            eca_null=eca_null,
            surrogates=surrogate_method,
            seed=seed,
            freq=freq,
            detrend=detrend,
            deseason=deseason,
            mseed={"seed_id": seed_id, "freqmin": freqmin, "freqmax": freqmax,
                   "window": rsam_window},
            **params,
        )  # fmt: skip
    except ValueError as err:  # unparseable durations or contradicting thresholds
        raise ConfigError(f"{err} — check the compare options") from None
    console = Console()
    result = json.loads(Path(paths["comparison_json"]).read_text())
    xc = result.get("xcorr")
    if xc and xc.get("best_lag_s") is not None:
        unc = xc.get("lag_uncertainty_s")
        pm = f" ± {unc / 3600:.2f}" if unc is not None else ""
        prep = xc.get("preprocessing") or {}
        p_value = "-" if xc.get("p_value") is None else f"{xc['p_value']:.3g}"
        console.print(
            f"[bold]{camera}[/] ({series}): best lag {xc['best_lag_refined_s'] / 3600:+.2f}{pm} h "
            f"(positive: seismic leads), r = {xc['r']:.2f}, p = {p_value} "
            f"({xc.get('n_surrogates')} {prep.get('surrogates')} surrogates; detrend: "
            f"{prep.get('detrend')}, daily cycle removed: {prep.get('daily_cycle_removed')})"
        )
    if result.get("coincidence_family_p") is not None:
        settings = result.get("settings") or {}
        null = str(settings.get("eca_null") or "").split(":")[0]
        console.print(
            f"  coincidence: family-wise p over all windows/lags/rates = "
            f"{result['coincidence_family_p']:.3g} ({settings.get('eca_surrogates')} "
            f"{null} surrogates)"
        )
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


COMMANDS = [catalogue_cmd, compare_cmd]
