"""The options several commands share, defined once so that they read, parse and help alike.

``--config FILE``, ``--camera ID``, ``--start``/``--end``, ``--batch-size``/``--device``,
``--json FILE`` and the cluster options. (``-v``/``--verbose`` belongs to the ``plumenet``
group itself: ``plumenet -v backfill ...``.) Each helper returns a decorator; the keyword
says which parameter name the command receives.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

Decorator = Callable[[Any], Any]

CONFIG_HELP = "cameras.yaml: the cameras, the store and the model (path or URL)."
START_HELP = "Start, inclusive: a UTC date or an ISO timestamp (2024-03-01T06:00+13:00)."
END_HELP = "End, exclusive: a date includes that whole day; an ISO timestamp is exact."
CLUSTER_HELP = (
    "Where units run (default: the config's `cluster:` section, else 'local'): 'local' (a "
    "LocalCluster sized to this machine), 'local-cuda' (one worker per GPU; needs "
    "plumenet[gpu]), a scheduler address such as tcp://host:8786, a scheduler file (*.json, "
    "from `dask scheduler --scheduler-file`) or a cluster class such as "
    "dask_jobqueue.SLURMCluster (with --cluster-kwargs). See docs/deploy.md."
)


def _stack(options: list[Decorator]) -> Decorator:
    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def config_option(dest: str = "config") -> Decorator:
    """``--config FILE`` (required)."""
    return click.option("--config", dest, required=True, metavar="FILE", help=CONFIG_HELP)


def camera_option(dest: str = "cameras", *, multiple: bool = True) -> Decorator:
    """``--camera ID``: repeatable (default every camera), or exactly one (required)."""
    if multiple:
        return click.option(
            "--camera",
            dest,
            multiple=True,
            metavar="ID",
            help="Camera id (repeatable; default all).",
        )
    return click.option("--camera", dest, required=True, metavar="ID", help="Camera id.")


def range_options(*, required: bool = True) -> Decorator:
    """``--start``/``--end`` with the one meaning every command gives them."""
    return _stack(
        [
            click.option("--start", required=required, default=None, help=START_HELP),
            click.option("--end", required=required, default=None, help=END_HELP),
        ]
    )


def model_run_options(batch_size: int = 16) -> Decorator:
    """``--batch-size N`` and ``--device`` of every command that runs the model."""
    return _stack(
        [
            click.option(
                "--batch-size",
                default=batch_size,
                show_default=True,
                type=click.IntRange(min=1),
                help="Frames per model batch.",
            ),
            click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)."),
        ]
    )


def json_option(
    dest: str = "json_out", help_text: str = "Also write the summary as JSON."
) -> Decorator:
    """``--json FILE``."""
    return click.option(
        "--json",
        dest,
        default=None,
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help=help_text,
    )


def cluster_options(command: Any) -> Any:
    """The cluster options shared by backfill, nightly and serve."""
    return _stack(
        [
            click.option("--cluster", default=None, help=CLUSTER_HELP),
            click.option("--workers", type=click.IntRange(1), help="Local cluster: workers."),
            click.option(
                "--threads-per-worker", type=click.IntRange(1), help="Local cluster: threads each."
            ),
            click.option("--memory-limit", help="Local cluster: memory per worker, e.g. 8GiB."),
            click.option(
                "--worker-processes/--in-process",
                "processes",
                default=None,
                help=(
                    "Local cluster: workers in their own processes, or threads of this one "
                    "(default: in this process for one worker without --memory-limit/--adapt)."
                ),
            ),
            click.option("--cluster-kwargs", help="JSON arguments of a cluster class."),
            click.option("--adapt", help="Adaptive scaling MIN:MAX workers (local or a class)."),
            click.option(
                "--max-in-flight",
                type=click.IntRange(1),
                help=(
                    "Tasks dispatched at once: units, or groups of units on GPU workers "
                    "(default: 2 per worker thread)."
                ),
            ),
        ]
    )(command)


def make_out_dir(out: Path) -> None:
    """Create ``--out`` now, so that an unusable one fails before the long work (one line)."""
    from plumenet.errors import ConfigError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"--out {out}: cannot create this folder ({err.strerror or err}) — give a folder "
            "you can write to, not below a file"
        ) from None
