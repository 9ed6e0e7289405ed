"""``plumenet verify``: find (and with ``--repair`` fix) damage in the store.

Exit codes: 0 nothing wrong (or everything repaired), 1 damage found and not repaired
(the lines say what; ``--repair`` fixes it), 2 damage that cannot be repaired
automatically (one ``error:`` line: what, where, how to fix).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from plumenet.cli.options import config_option, json_option


@click.command("verify")
@config_option("config_path")
@click.option(
    "--camera", "cameras", multiple=True, help="Camera id (repeatable; default: every camera)."
)
@click.option(
    "--repair",
    is_flag=True,
    help="Fix what can be fixed: rewrite damaged metadata, grow arrays to one length, and "
    "mark damaged units for reprocessing (status 0) so the next backfill redoes them.",
)
@json_option("json_path", "Also write the damage found as JSON.")
def verify_command(
    config_path: str, cameras: tuple[str, ...], repair: bool, json_path: str | None
) -> None:
    """Check every chunk, the metadata and the time axis of each camera's group.

    A store this user cannot write in (a mounted backup) is checked without the store lease;
    --repair needs a writable store.
    """
    import contextlib

    from plumenet.config import load_config
    from plumenet.errors import StoreError
    from plumenet.jobs.lease import driver_lease
    from plumenet.jobs.preflight import check_output_file, store_write_problem
    from storage.repair import repair_camera
    from storage.verify import damage_json, verify_camera

    config = load_config(config_path)
    ids = [config.camera(c).id for c in cameras] if cameras else [c.id for c in config.cameras]
    check_output_file(json_path, "--json")
    so = config.storage_options
    read_only = store_write_problem(config.store, so)
    if read_only and repair:
        raise StoreError(
            f"store {config.store}: {read_only}, and --repair rewrites it — run the repair "
            "where the store is writable, or leave out --repair to only check it"
        )
    if read_only:
        # the lease is an object in the store: a read-only check goes without it
        click.echo(
            f"note: store {config.store}: {read_only}; checked read-only, without the store "
            "lease (a backfill writing to it meanwhile may show as damage)"
        )
    hold = contextlib.nullcontext() if read_only else driver_lease(config, "verify")
    all_found = []
    with hold:
        for camera_id in ids:
            try:
                found = verify_camera(config.store, camera_id, storage_options=so)
            except StoreError as err:
                if "has no group" not in str(err):
                    raise
                click.echo(f"{camera_id}: no group in the store yet (nothing to verify)")
                continue
            all_found += found
            for damage in found:
                click.echo(damage.line())
            unrepairable = [d for d in found if not d.repairable]
            if unrepairable:
                raise StoreError(unrepairable[0].line())
            if repair and found:
                for line in repair_camera(config.store, camera_id, storage_options=so):
                    click.echo(f"repaired: {line}")
            elif not found:
                click.echo(f"{camera_id}: ok")
    if json_path:
        Path(json_path).write_text(damage_json(all_found))
    if all_found and not repair:
        click.echo(
            f"{len(all_found)} problem(s) found — rerun with --repair to fix them; the next "
            "backfill then redoes the affected units",
            err=True,
        )
        sys.exit(1)
    if all_found:
        click.echo("repaired — run the backfill again to redo the affected units")


COMMANDS = [verify_command]
