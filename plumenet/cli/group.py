"""The click group every ``plumenet`` group is built on: user errors in one line, exit 2."""

from __future__ import annotations

import sys

import click

from plumenet.errors import PlumenetError

#: Exit code after Ctrl-C (128 + SIGINT, as shells report it): neither success (0), nor
#: units left undone (1), nor bad input (2).
INTERRUPTED_EXIT = 130


def usage_error_line(err: click.UsageError, path: str = "plumenet") -> str:
    """Click's usage error (usage, hint, blank line, message) as one line: what went wrong,
    in which command, and where to look. ``path`` names the command when click's parser
    did not attach a context (an option given without its value)."""
    if err.ctx is not None:
        path = err.ctx.command_path
    return f"error: {path}: {err.format_message()} See '{path} --help'."


class CommandGroup(click.Group):
    """Turns user-caused errors — ours and click's usage errors — into one line on stderr
    and exit code 2. ``plumenet`` and its subgroups (``plumenet anomaly``) are built on it."""

    def make_context(self, *args: object, **kwargs: object) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)  # type: ignore[arg-type]
        except click.UsageError as err:
            click.echo(usage_error_line(err), err=True)
            sys.exit(err.exit_code)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta["plumenet.command_path"] = f"{ctx.command_path} {name}"
        return name, command, rest

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            path = ctx.meta.get("plumenet.command_path", ctx.command_path)
            click.echo(usage_error_line(err, path), err=True)
            sys.exit(err.exit_code)
        except PlumenetError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            path = ctx.meta.get("plumenet.command_path", ctx.command_path)
            click.echo(
                f"interrupted: {path} stopped; what it finished is kept — run the same "
                "command again to go on",
                err=True,
            )
            sys.exit(INTERRUPTED_EXIT)
