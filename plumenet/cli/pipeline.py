"""``plumenet backfill | nightly | serve | demo``: the Prefect flows from the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from plumenet.cli.options import (
    CLUSTER_HELP,
    camera_option,
    cluster_options,
    config_option,
    json_option,
    model_run_options,
    range_options,
)


def _cluster(cfg: Any, options: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    """The flow's ``cluster`` parameter from the CLI options, and the cluster it resolves to
    (checked: a scheduler that does not answer fails here)."""
    from plumenet.jobs.cluster import cluster_from_options, resolve_cluster

    override = cluster_from_options(cfg.cluster, **options)
    return override, resolve_cluster(cfg.cluster, override)


@contextmanager
def _api_and_model(spec: str) -> Iterator[None]:
    """The Prefect API (``flows.runtime.prefect_api``: a temporary server when none is
    configured) with the model identified meanwhile.

    The server starts in its own process (~3 s here) while this one loads the weights to
    identify them (~3 s in a fresh process), so the two overlap instead of adding up. A
    weights error still ends the command with its one line, once the server has stopped.
    """
    from concurrent.futures import ThreadPoolExecutor

    from flows.runtime import prefect_api
    from plumenet.jobs.backfill import identify_model

    with ThreadPoolExecutor(1, thread_name_prefix="identify-model") as pool:
        identified = pool.submit(identify_model, spec)
        with prefect_api():
            identified.result()
            yield


def _echo_report(report: dict[str, Any]) -> None:
    for row in report["cameras"]:
        click.echo(
            f"{row['camera']}: {row['units_run']}/{row['units_in_range']} units run, "
            f"{row['frames_processed']} frames (ok {row['ok']}, unreadable {row['unreadable']}, "
            f"unusable {row['unusable']}), {row['skipped_files']} files skipped"
        )
    click.echo(
        f"{report['frames']} frames in {report['wall_s']:.1f} s "
        f"({report['frames_per_s']:.2f} frames/s)"
    )
    for failed in report["units_failed"]:
        click.echo(
            f"left undone: {failed['camera']} unit {failed['unit']}: {failed['error']} "
            "(rerun the same command to retry)",
            err=True,
        )
    if report["model"]["demo"]:
        click.echo("note: made with the bundled demo model (synthetic scenes) - demo/test only")


@click.command()
@config_option()
@range_options()
@camera_option()
@cluster_options
@click.option(
    "--window", default=None, help="Time planned per step and camera (default 31D, a month)."
)
@click.option("--overwrite", is_flag=True, help="Recompute units already in the store.")
@model_run_options()
@json_option()
def backfill(
    config: str,
    start: str,
    end: str,
    cameras: tuple[str, ...],
    window: str | None,
    overwrite: bool,
    batch_size: int,
    device: str | None,
    json_out: str | None,
    **cluster_opts: Any,
) -> None:
    """Segment every frame in [START, END) that the store does not hold yet.

    Reruns are cheap: finished slots are skipped, so a killed run is resumed by running
    the same command again.
    """
    from plumenet.cli import hide_user_error_tracebacks
    from plumenet.config import load_config
    from plumenet.jobs.backfill import parse_window
    from plumenet.jobs.preflight import check_output_file, preflight
    from plumenet.timeutil import parse_end, parse_start

    # what the user can fix fails here, in one line, before any server or cluster starts
    # (and before Prefect is imported: pre-flight answers in well under a second)
    cfg = load_config(config)
    check_output_file(json_out, "--json")
    cluster, spec = _cluster(cfg, cluster_opts)
    preflight(
        cfg,
        parse_start(start),
        parse_end(end),
        list(cameras) or None,
        batch_size=batch_size,
        device=device,
        cluster=spec,
    )
    parse_window(window)
    from flows.pipeline import backfill as backfill_flow

    hide_user_error_tracebacks()
    with _api_and_model(cfg.segmentation_model()):
        report = backfill_flow(
            config=config,
            start=start,
            end=end,
            cameras=list(cameras) or None,
            overwrite=overwrite,
            cluster=cluster,
            batch_size=batch_size,
            device=device,
            window=window,
        )
    _echo_report(report)
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2))
    if report["units_failed"]:
        sys.exit(1)


LOOKBACK_HELP = "How far back from now to look, from that day's midnight UTC: 2D, 36h, P2D."


@click.command()
@config_option()
@click.option("--lookback", default="2D", show_default=True, help=LOOKBACK_HELP)
@camera_option()
@cluster_options
@model_run_options()
@json_option()
def nightly(
    config: str,
    lookback: str,
    cameras: tuple[str, ...],
    batch_size: int,
    device: str | None,
    json_out: str | None,
    **cluster_opts: Any,
) -> None:
    """Process the last LOOKBACK up to now (late uploads are picked up, done slots skipped)."""
    import pandas as pd

    from plumenet.cli import hide_user_error_tracebacks
    from plumenet.config import load_config
    from plumenet.jobs.backfill import lookback_range
    from plumenet.jobs.preflight import check_output_file, preflight

    cfg = load_config(config)
    check_output_file(json_out, "--json")
    cluster, spec = _cluster(cfg, cluster_opts)
    preflight(
        cfg,
        *lookback_range(lookback, pd.Timestamp.now(tz="UTC")),
        list(cameras) or None,
        batch_size=batch_size,
        device=device,
        cluster=spec,
    )
    from flows.pipeline import nightly as nightly_flow

    hide_user_error_tracebacks()
    with _api_and_model(cfg.segmentation_model()):
        report = nightly_flow(
            config=config,
            lookback=lookback,
            cameras=list(cameras) or None,
            cluster=cluster,
            batch_size=batch_size,
            device=device,
        )
    _echo_report(report)
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2))
    if report["units_failed"]:
        sys.exit(1)


@click.command()
@config_option()
@click.option("--cron", default="0 2 * * *", show_default=True, help="Schedule (UTC).")
@click.option("--lookback", default="2D", show_default=True, help=LOOKBACK_HELP)
@cluster_options
def serve(config: str, cron: str, lookback: str, **cluster_opts: Any) -> None:
    """Run the nightly flow on a schedule from this process (no work pool needed).

    Needs a Prefect API (PREFECT_API_URL, e.g. `prefect server start`); one run at a time.
    """
    import pandas as pd

    from flows.pipeline import nightly as nightly_flow
    from flows.runtime import require_api
    from plumenet.config import load_config
    from plumenet.jobs.backfill import lookback_range

    require_api("serve")  # an ephemeral server would schedule nothing
    lookback_range(lookback, pd.Timestamp.now(tz="UTC"))
    cluster, _ = _cluster(load_config(config), cluster_opts)  # fail now, not at 02:00
    nightly_flow.serve(
        name="nightly",
        cron=cron,
        parameters={
            "config": str(Path(config).resolve()),
            "lookback": pd.Timedelta(lookback).isoformat(),  # ISO 8601, as the UI writes it
            "cluster": cluster,
        },
        global_limit=1,  # the deployment's concurrency limit: one nightly run at a time
        limit=1,
    )


DEMO_START = "2024-03-01"
DEMO_DAYS = 3
DEMO_CAMERAS = (
    {"id": "DEMO.geonet", "layout": "geonet", "fields": {"SITE": "DEM", "VC": "01"}, "seed": 11},
    {"id": "DEMO.avo", "layout": "avo", "fields": {"CAM": "demoashcam"}, "seed": 12},
)


def write_demo_config(out: Path, archives: dict[str, Path]) -> Path:
    """A cameras.yaml for the demo archive, on the embedded defaults (local store, demo model)."""
    import yaml

    from storage.layouts import BUILTIN_TEMPLATES

    cameras = []
    for cam in DEMO_CAMERAS:
        cameras.append(
            {
                "id": cam["id"],
                "archive": str(archives[cam["id"]]),
                "template": BUILTIN_TEMPLATES[cam["layout"]],
                "fields": cam["fields"],
                "timezone": "UTC",
                "cadence": "10min",
                "grid_start": DEMO_START,
                "site": {"volcano": "Synthetic", "lat": 0.0, "lon": 0.0},
            }
        )
    config = {"store": str(out / "plumenet.zarr"), "model": "demo", "cameras": cameras}
    path = out / "cameras.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@click.command()
@click.option(
    "--out",
    default="plumenet-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the synthetic archive, the store and the reports.",
)
@click.option(
    "--days",
    default=DEMO_DAYS,
    show_default=True,
    type=click.IntRange(1, 60),
    help="Days of frames per camera.",
)
@click.option("--cluster", default="local", show_default=True, help=CLUSTER_HELP)
def demo(out: str, days: int, cluster: str) -> None:
    """Synthetic archive -> backfill -> catalogue -> seismic comparison, all offline.

    Uses the bundled demo model (trained on synthetic scenes: for demos and tests only).
    """
    import pandas as pd

    from flows.pipeline import backfill as backfill_flow
    from flows.runtime import prefect_api
    from plumenet.jobs.synth_archive import write_archive

    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp(DEMO_START, tz="UTC")
    end = start + pd.Timedelta(days=days)
    archives: dict[str, Path] = {}
    truths: dict[str, Any] = {}
    click.echo(f"1/4 writing a synthetic archive of 2 cameras x {days} days under {root}/archive")
    for cam in DEMO_CAMERAS:
        url = root / "archive" / cam["id"]
        truths[cam["id"]] = write_archive(
            str(url),
            layout=cam["layout"],
            start=start,
            end=end,
            cadence="10min",
            seed=cam["seed"],
            broken=3,
            fields=cam["fields"],
            camera=cam["id"],
        )
        archives[cam["id"]] = url
    config = write_demo_config(root, archives)

    click.echo("2/4 backfill: local Dask cluster, temporary Prefect server, bundled demo model")
    last_day = (end - pd.Timedelta(days=1)).date().isoformat()
    with prefect_api():
        report = backfill_flow(
            config=str(config),
            start=start.date().isoformat(),
            end=last_day,
            cluster=cluster,
        )
        _echo_report(report)
        outputs = _demo_science(config, root, truths)
    (root / "backfill.json").write_text(json.dumps(report, indent=2))

    store = root / "plumenet.zarr"
    click.echo("")
    click.echo(f"{'config:':<26}{config}")
    click.echo(f"{'store:':<26}{store}")
    for cam, truth in truths.items():
        click.echo(f"{'ground truth ' + cam + ':':<26}{truth.truth_url}")
    for name, path in outputs.items():
        click.echo(f"{name + ':':<26}{path}")
    click.echo("")
    click.echo("Open the store with xarray:")
    click.echo("    import xarray as xr")
    click.echo(f"    ds = xr.open_zarr({str(store)!r}, group={DEMO_CAMERAS[0]['id']!r})")
    click.echo("    ds.fraction.sel(time='2024-03-01').plot.line(x='time')")


def _demo_science(config: Path, root: Path, truths: dict[str, Any]) -> dict[str, str]:
    """Catalogue both cameras and compare the first with its synthetic RSAM and events."""
    from flows.science import catalogue, compare

    click.echo("3/4 activity catalogue (episodes, hourly/daily activity, timeline PNG)")
    # lava covers well under 1 % of a synthetic frame: a lower onset threshold for it
    catalogue_paths = catalogue(
        config=str(config), out=str(root / "catalogue"), params={"on": {"lava": 0.003}}
    )
    camera = DEMO_CAMERAS[0]["id"]
    truth = Path(truths[camera].truth_url)
    click.echo("4/4 comparison with the synthetic RSAM and seismic events")
    compare_paths = compare(
        config=str(config),
        camera=camera,
        rsam=str(truth / "rsam.csv"),
        events=str(truth / "events.xml"),
        out=str(root / "comparison"),
        freq="10min",
    )
    outputs = {}
    for cam, files in catalogue_paths.items():
        outputs[f"timeline {cam}"] = files["timeline_png"]
        outputs[f"episodes {cam}"] = files["episodes_csv"]
    for key in ("comparison_json", "xcorr_png", "epoch_png"):
        if key in compare_paths:
            outputs[key.replace("_", " ")] = compare_paths[key]
    return outputs


COMMANDS = [backfill, nightly, serve, demo]
