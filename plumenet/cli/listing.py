"""``plumenet list``: the frames a run would see for one camera and range."""

from __future__ import annotations

import click

from plumenet.cli.options import camera_option, config_option, range_options


@click.command("list")
@config_option("config_path")
@camera_option("camera_id", multiple=False)
@range_options()
@click.option(
    "--csv",
    "csv_path",
    default=None,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also write the manifest to this CSV.",
)
def list_command(
    config_path: str, camera_id: str, start: str, end: str, csv_path: str | None
) -> None:
    """List a camera's frames in [start, end): one line per frame, then a count."""
    from plumenet.config import load_config
    from plumenet.jobs.preflight import check_archive, check_output_file
    from plumenet.timeutil import CSV_TIME_FORMAT, parse_range
    from storage.archive import list_frames

    # backfill's own pre-flight checks: one line before anything is listed or printed
    config = load_config(config_path)
    camera = config.camera(camera_id)
    t0, t1 = parse_range(start, end)
    check_output_file(csv_path, "--csv")
    check_archive(camera, config.storage_options)
    frames = list_frames(camera, t0, t1, storage_options=config.storage_options)
    for time, path in zip(frames["time"], frames["path"], strict=True):
        click.echo(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ')}  {path}")
    skipped = frames.attrs.get("skipped", [])
    click.echo(
        f"{len(frames)} frame(s) for camera {camera.id} in [{t0.isoformat()}, {t1.isoformat()})"
        f"; {len(skipped)} file(s) skipped"
    )
    if csv_path:
        out = frames.copy()
        out["time"] = out["time"].dt.strftime(CSV_TIME_FORMAT)
        out.to_csv(csv_path, index=False)


COMMANDS = [list_command]
