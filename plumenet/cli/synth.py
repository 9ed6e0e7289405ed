"""``plumenet synth``: write a synthetic camera archive with its ground truth."""

from __future__ import annotations

import re

import click

from plumenet.cli.options import range_options
from plumenet.errors import ConfigError

_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


def parse_size(text: str) -> tuple[int, int]:
    """``640x480`` -> (640, 480)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ConfigError(f"--size {text!r} is not WIDTHxHEIGHT; use e.g. --size 640x480")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 16 or height < 16:
        raise ConfigError(f"--size {text!r} is too small; use at least 16x16")
    return width, height


def parse_storage_options(pairs: tuple[str, ...]) -> dict[str, object]:
    """``KEY=VALUE`` pairs; ``true``/``false`` become booleans."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--storage-option {pair!r} is not KEY=VALUE; use e.g. "
                "--storage-option endpoint_url=http://localhost:5000"
            )
        lowered = value.strip().lower()
        options[key.strip()] = {"true": True, "false": False}.get(lowered, value)
    return options


@click.command("synth")
@click.option(
    "--out", "out", required=True, help="Archive root: a local folder or s3://bucket/prefix."
)
@click.option(
    "--layout",
    type=click.Choice(["geonet", "avo", "flat"]),
    default="geonet",
    show_default=True,
    help="File layout of a real archive.",
)
@range_options()
@click.option("--cadence", default="10min", show_default=True, help="Time between frames.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--broken", default=0, show_default=True, type=int, help="Broken files to plant.")
@click.option("--size", "size_text", default="640x480", show_default=True, help="WIDTHxHEIGHT.")
@click.option(
    "--camera",
    default=None,
    help="Camera id used in paths (default WIZ.01 for geonet, SYN otherwise).",
)
@click.option("--tz", default="UTC", show_default=True, help="Time zone of path timestamps.")
@click.option(
    "--storage-option",
    "storage_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec option, repeatable (e.g. endpoint_url=http://localhost:5000).",
)
def synth(
    out: str,
    layout: str,
    start: str,
    end: str,
    cadence: str,
    seed: int,
    broken: int,
    size_text: str,
    camera: str | None,
    tz: str,
    storage_option: tuple[str, ...],
) -> None:
    """Write a synthetic webcam archive and its truth (episodes, fractions, RSAM, events)."""
    # imported here, not at the top: they bring pandas (and the job PIL, obspy, fsspec), which
    # `plumenet --help` need not load (docs/architecture.md)
    from plumenet.jobs.preflight import check_output_folder
    from plumenet.jobs.synth_archive import write_archive
    from plumenet.synthetic.timeline import parse_cadence
    from plumenet.timeutil import parse_range

    size = parse_size(size_text)
    options = parse_storage_options(storage_option)
    t0, t1 = parse_range(start, end)
    parse_cadence(cadence, "--cadence")
    if broken < 0:
        raise ConfigError(f"--broken {broken} must be 0 or more")
    check_output_folder(out, "--out")
    camera_id = camera or ("WIZ.01" if layout == "geonet" else "SYN")
    truth = write_archive(
        out,
        layout=layout,
        start=t0,
        end=t1,
        cadence=cadence,
        seed=seed,
        broken=broken,
        storage_options=options,
        size=size,
        camera=camera_id,
        tz=tz,
    )
    n_broken = len(truth.broken)
    click.echo(
        f"wrote {len(truth.fractions)} frames ({n_broken} broken) of camera {camera_id} "
        f"to {out} [{layout}: {truth.template}]"
    )
    click.echo(f"{len(truth.episodes)} episodes from {t0} to {t1} (UTC); seed {seed}")
    click.echo(f"ground truth in {truth.truth_url} (rsam lag {truth.rsam_lag_s:.0f} s)")


COMMANDS = [synth]
