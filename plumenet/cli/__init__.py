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

import click

from plumenet.cli.group import CommandGroup
from plumenet.errors import PlumenetError


def _user_error_names() -> set[str]:
    names, todo = set(), [PlumenetError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


class UserErrorTracebackFilter(logging.Filter):
    """Drops Prefect's console records of a run that ended in a :class:`PlumenetError`.

    The CLI prints that error as its one ``error:`` line; the records still reach the
    Prefect API (the UI shows them), and ``-v`` brings them back to the console.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, PlumenetError):
            return False
        if record.levelno >= logging.ERROR and "in state Failed" in record.getMessage():
            message = record.getMessage()
            return not any(f"{name}:" in message or f"{name}(" in message
                           for name in _user_error_names())  # fmt: skip
        return True


def hide_user_error_tracebacks() -> None:
    """Install :class:`UserErrorTracebackFilter` on Prefect's console handlers (not with -v).

    Called by commands after they import Prefect, whose logging is set up on import.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.find_root().params.get("verbose", 0) > 0:
        return
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, UserErrorTracebackFilter) for f in handler.filters):
                handler.addFilter(UserErrorTracebackFilter())


@click.group(cls=CommandGroup)
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
    # libraries that log INFO on their own loggers stay quiet; notices always show
    handler.addFilter(NoticeOrLevel(level))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


class NoticeOrLevel(logging.Filter):
    """Records at ``level`` and above, plus INFO records marked ``extra={"notice": True}``
    (progress lines without a terminal, "nothing to do"): what cron and Docker logs must
    show without ``-v``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or bool(getattr(record, "notice", False))


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register()
