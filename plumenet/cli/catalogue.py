"""``plumenet catalogue`` and ``plumenet compare``: activity catalogues and seismic comparison."""

from __future__ import annotations

import logging
from pathlib import Path

import click

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
        from plumenet.science.activity import ACTIVITY_CLASSES

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
            "--dark-threshold", type=float, default=None, help="Brightness below this is night."
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
@click.option("--config", "config_path", required=True, help="cameras.yaml (path or URL).")
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
    dark_threshold: float | None,
    start: str | None,
    end: str | None,
) -> None:
    """Emission episodes and hourly/daily activity per camera, from the store."""
    from rich.console import Console

    from plumenet.errors import ConfigError
    from plumenet.science.activity import run_catalogue

    params = _params(
        on=on, off=off, min_duration=min_duration, max_gap=max_gap, dark_threshold=dark_threshold
    )
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
        import pandas as pd

        episodes = pd.read_parquet(paths["episodes_parquet"])
        counts = episodes["class"].value_counts().to_dict()
        console.print(f"[bold]{cam}[/]: {len(episodes)} episodes {counts}")
        for name, path in paths.items():
            console.print(f"  {name}: {path}")


@click.command("compare")
@click.option("--config", "config_path", required=True, help="cameras.yaml (path or URL).")
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
@click.option("--seed", default=0, show_default=True, help="Random seed of surrogates/shuffles.")
@_thresholds
def compare_cmd(
    config_path: str,
    camera: str,
    rsam: Path | None,
    events: Path | None,
    out: Path,
    max_lag: str,
    windows: tuple[str, ...],
    lags: tuple[str, ...],
    surrogates: int,
    seed: int,
    on: float | dict[str, float] | None,
    off: float | dict[str, float] | None,
    min_duration: str | None,
    max_gap: str | None,
    dark_threshold: float | None,
    start: str | None,
    end: str | None,
) -> None:
    """Compare a camera's activity with RSAM and a seismic event catalogue."""
    import json

    from rich.console import Console

    from plumenet.errors import ConfigError
    from plumenet.science.compare import run_compare

    params = _params(
        on=on, off=off, min_duration=min_duration, max_gap=max_gap, dark_threshold=dark_threshold
    )
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
            max_lag=max_lag,
            n_surrogates=surrogates,
            seed=seed,
            **params,
        )
    except ValueError as err:  # unparseable durations or contradicting thresholds
        raise ConfigError(f"{err} — check the compare options") from None
    console = Console()
    result = json.loads(Path(paths["comparison_json"]).read_text())
    xc = result.get("xcorr")
    if xc and xc.get("best_lag_s") is not None:
        console.print(
            f"[bold]{camera}[/]: best lag {xc['best_lag_s'] / 3600:+.1f} h (positive: seismic "
            f"leads), r = {xc['r']:.2f}, p = {xc['p_value']}"
        )
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


COMMANDS = [catalogue_cmd, compare_cmd]
