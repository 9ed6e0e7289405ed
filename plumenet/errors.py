"""Errors a user can cause and fix: the CLI prints their message on one line and exits 2."""


class PlumenetError(Exception):
    """Base of all user-facing errors; the message says what went wrong, where, how to fix it."""

    exit_code = 2


class ConfigError(PlumenetError):
    """cameras.yaml (or a CLI option) is invalid."""


class WeightsError(PlumenetError):
    """Model weights cannot be found, reached or loaded."""


class ArchiveError(PlumenetError):
    """The frame archive cannot be listed or a file name cannot be parsed."""


class StoreError(PlumenetError):
    """The Zarr store cannot be opened, extended or written as asked."""


class SeismicInputError(PlumenetError):
    """An RSAM series or event catalogue file is malformed."""


class UnreadableImageError(PlumenetError):
    """Bytes that do not decode to an image; ``reason`` says why (empty, truncated, not image)."""

    def __init__(self, reason: str, source: str | None = None) -> None:
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}unreadable image ({reason})")
