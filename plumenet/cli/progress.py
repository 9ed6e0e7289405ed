"""Progress of long CLI work: a rich bar on a terminal, a line now and then otherwise.

Cron jobs, Docker and CI logs have no terminal: there a bar would print nothing (or garbage),
so :func:`progress` writes ``<what>: 120/2000 frames, 35 s`` to stderr every
:data:`LINE_EVERY_S` seconds instead, and once at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

#: Seconds between progress lines when stderr is not a terminal.
LINE_EVERY_S = 30.0


@contextmanager
def progress(
    total: int, what: str, unit: str = "frames", *, tty: bool | None = None
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; a bar when ``tty`` (default: stderr is a terminal)."""
    if tty if tty is not None else sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeRemainingColumn,
        )

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(what, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    started = last = time.monotonic()
    done = 0

    def advance(n: int = 1) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= LINE_EVERY_S:
            last = now
            click.echo(f"{what}: {done}/{total} {unit}, {now - started:.0f} s", err=True)

    yield advance
    click.echo(f"{what}: {done}/{total} {unit}, {time.monotonic() - started:.0f} s", err=True)
