"""``plumenet backfill | nightly | serve | demo``: the Prefect flows from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

CLUSTER_HELP = (
    "Where units run: 'local' (default: a LocalCluster of worker processes sized to this "
    "machine), 'local-cuda' (one worker per GPU; needs plumenet[gpu]) or the address of a "
    "running Dask scheduler such as tcp://host:8786."
)


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
@click.option(
    "--config", "config", required=True, type=click.Path(dir_okay=False), help="cameras.yaml"
)
@click.option("--start", required=True, help="UTC date or ISO timestamp (inclusive).")
@click.option("--end", required=True, help="UTC date (whole day included) or ISO timestamp.")
@click.option("--camera", "cameras", multiple=True, help="Camera id (repeatable; default all).")
@click.option("--cluster", default="local", show_default=True, help=CLUSTER_HELP)
@click.option("--overwrite", is_flag=True, help="Recompute units already in the store.")
@click.option("--batch-size", default=16, show_default=True, help="Frames per model batch.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the summary.")
def backfill(
    config: str,
    start: str,
    end: str,
    cameras: tuple[str, ...],
    cluster: str,
    overwrite: bool,
    batch_size: int,
    device: str | None,
    json_out: str | None,
) -> None:
    """Segment every frame in [START, END) that the store does not hold yet.

    Reruns are cheap: finished slots are skipped, so a killed run is resumed by running
    the same command again.
    """
    from flows.pipeline import backfill as backfill_flow
    from flows.runtime import prefect_api
    from plumenet.config import load_config
    from plumenet.jobs.backfill import check_cluster, check_request, identify_model
    from plumenet.timeutil import parse_end, parse_start

    # what the user can fix fails here, in one line, before any server or cluster starts
    cfg = load_config(config)
    check_request(cfg, parse_start(start), parse_end(end), list(cameras) or None)
    check_cluster(cluster)
    identify_model(cfg.model)
    with prefect_api():
        report = backfill_flow(
            config=config,
            start=start,
            end=end,
            cameras=list(cameras) or None,
            overwrite=overwrite,
            cluster=cluster,
            progress=sys.stderr.isatty(),
            batch_size=batch_size,
            device=device,
        )
    _echo_report(report)
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2))
    if report["units_failed"]:
        sys.exit(1)


@click.command()
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False))
@click.option("--lookback", default="2D", show_default=True, help="How far back to look.")
@click.option("--cluster", default="local", show_default=True, help=CLUSTER_HELP)
def nightly(config: str, lookback: str, cluster: str) -> None:
    """Process the last LOOKBACK up to now (late uploads are picked up, done slots skipped)."""
    import pandas as pd

    from flows.pipeline import nightly as nightly_flow
    from flows.runtime import prefect_api
    from plumenet.config import load_config
    from plumenet.jobs.backfill import check_cluster, identify_model, lookback_range

    lookback_range(lookback, pd.Timestamp.now(tz="UTC"))
    identify_model(load_config(config).model)
    check_cluster(cluster)
    with prefect_api():
        report = nightly_flow(
            config=config, lookback=lookback, cluster=cluster, progress=sys.stderr.isatty()
        )
    _echo_report(report)
    if report["units_failed"]:
        sys.exit(1)


@click.command()
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False))
@click.option("--cron", default="0 2 * * *", show_default=True, help="Schedule (UTC).")
@click.option("--lookback", default="2D", show_default=True)
@click.option("--cluster", default="local", show_default=True, help=CLUSTER_HELP)
def serve(config: str, cron: str, lookback: str, cluster: str) -> None:
    """Run the nightly flow on a schedule from this process (no work pool needed).

    Needs a Prefect API (PREFECT_API_URL, e.g. `prefect server start`); one run at a time.
    """
    from flows.pipeline import nightly as nightly_flow
    from plumenet.config import load_config

    load_config(config)  # fail now, not at 02:00
    nightly_flow.serve(
        name="nightly",
        cron=cron,
        parameters={
            "config": str(Path(config).resolve()),
            "lookback": lookback,
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
            progress=sys.stderr.isatty(),
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
