"""The ``plumenet`` command line.

Each module in this package defines click commands and lists them in ``COMMANDS``;
they are discovered here so that adding a command touches one file. Modules must
not import torch, zarr or prefect at import time (``plumenet --help`` stays fast).
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys

import click

from plumenet.errors import PlumenetError


class _Group(click.Group):
    """Turns user-caused errors into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PlumenetError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="plumenet")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Segment volcano webcam archives with VIGIA-PlumeNet into Zarr time series."""
    level = logging.WARNING - 10 * min(verbose, 2)
    # botocore's debug log prints the access key id: never below INFO, even with -vv.
    for name in ("botocore", "aiobotocore", "s3fs", "urllib3"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    if verbose < 2:
        # Dask's per-worker INFO chatter drowns the progress bar; -vv shows it.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if verbose < 1:
        # Prefect's per-task console lines break the progress bar; runs still log to the API
        # (the UI shows them) and -v brings them back here.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    handler = logging.StreamHandler()
    handler.setLevel(level)  # libraries that log INFO on their own loggers stay quiet
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register()
