"""What storage reads of a camera, stated as two ``typing.Protocol`` classes.

Storage never imports ``plumenet.config``: the archive listing takes any object with the
attributes of :class:`ArchiveCamera`, the store any object with those of
:class:`StoreCamera`. ``plumenet.config.CameraConfig`` satisfies both; the store template
(:mod:`storage.template`) passes a plain dataclass. Both are ``runtime_checkable``, so a
test can check that a camera class has every attribute.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class ArchiveCamera(Protocol):
    """A camera as :func:`storage.archive.list_frames` reads it."""

    @property
    def id(self) -> str:
        """Camera id (used in messages and logs)."""

    @property
    def archive(self) -> str:
        """Root of the frame archive (local path or fsspec URL)."""

    @property
    def timezone(self) -> str:
        """IANA zone of the wall times in file names."""

    @property
    def path_template(self) -> str:
        """The literal path template below ``archive`` (a built-in layout resolved)."""

    @property
    def fields(self) -> dict[str, str]:
        """Values of the template's UPPERCASE camera fields."""


@runtime_checkable
class StoreCamera(Protocol):
    """A camera as the Zarr store reads it (its time grid and its description)."""

    @property
    def id(self) -> str:
        """Camera id: the name of its group in the store."""

    @property
    def cadence(self) -> str:
        """The grid step as written (e.g. ``"10min"``), kept in the group attributes."""

    @property
    def chunk(self) -> str:
        """One work unit's length as written (e.g. ``"1D"``)."""

    @property
    def cadence_td(self) -> pd.Timedelta:
        """The grid step."""

    @property
    def chunk_td(self) -> pd.Timedelta:
        """One work unit's length (a whole multiple of the cadence)."""

    @property
    def grid_start_ts(self) -> pd.Timestamp:
        """Origin of the time grid, tz-aware UTC."""

    def public_dict(self) -> dict[str, Any]:
        """JSON-ready description stored in the group's ``camera`` attribute."""
