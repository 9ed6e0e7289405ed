"""The store lease's object and its compare-and-swap access, per kind of store.

:class:`LocalLeaseBackend`: a file changed under ``flock`` on the store directory;
:class:`FsspecLeaseBackend`: an object on any fsspec filesystem, with conditional puts
(``If-None-Match``/``If-Match``) on S3 and write-then-read-back elsewhere. The lease
itself (records, renewal, waiting) is :mod:`storage.lease`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import fsspec

from plumenet.errors import StoreError

#: The lease object's name at the store's root.
LEASE_KEY = ".plumenet-lease.json"
#: Pause before reading back a lease written without a conditional put (seconds).
READ_BACK_PAUSE_S = 0.5


#: Why a conditional write of the lease object was refused.
LEASE_EXISTS = "a lease object exists already"
LEASE_CHANGED = "the lease object changed since it was read"


class LeaseConflictError(Exception):
    """A compare-and-swap on the lease object lost (internal: the caller retries)."""


class LeaseBackend(Protocol):
    """Compare-and-swap access to the lease object."""

    def read(self) -> tuple[bytes, str] | None:
        """``(content, etag)``, or ``None`` when there is no lease."""

    def create(self, data: bytes) -> None:
        """Write ``data`` if there is no lease; else :class:`LeaseConflictError`."""

    def replace(self, data: bytes, etag: str) -> None:
        """Write ``data`` if the object is still at ``etag``; else :class:`LeaseConflictError`."""

    def delete(self, etag: str) -> None:
        """Remove the object if it is still at ``etag``."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalLeaseBackend:
    """A lease file, changed under ``flock`` on the store directory (atomic on one host)."""

    def __init__(self, store_dir: Path) -> None:
        self.dir = store_dir
        self.path = store_dir / LEASE_KEY

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create the store folder {self.dir} ({err.strerror}) — point `store` "
                "at a writable folder"
            ) from err
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self) -> tuple[bytes, str] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return data, _digest(data)

    def _write(self, data: bytes) -> None:
        tmp = self.path.with_name(f"{LEASE_KEY}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(self.path)

    def read(self) -> tuple[bytes, str] | None:
        with self._locked():
            return self._read()

    def create(self, data: bytes) -> None:
        with self._locked():
            if self._read() is not None:
                raise LeaseConflictError(LEASE_EXISTS)
            self._write(data)

    def replace(self, data: bytes, etag: str) -> None:
        with self._locked():
            current = self._read()
            if current is None or current[1] != etag:
                raise LeaseConflictError(LEASE_CHANGED)
            self._write(data)

    def delete(self, etag: str) -> None:
        with self._locked():
            current = self._read()
            if current is not None and current[1] == etag:
                self.path.unlink()


class FsspecLeaseBackend:
    """A lease object on an fsspec filesystem: conditional puts on S3, else read-back."""

    def __init__(self, fs: Any, path: str, *, conditional: bool) -> None:
        self.fs = fs
        self.path = path
        self.conditional = conditional

    def _etag(self) -> str | None:
        try:
            info = self.fs.info(self.path, refresh=True)
        except FileNotFoundError:
            return None
        return str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("size"))

    def read(self) -> tuple[bytes, str] | None:
        for _ in range(5):
            before = self._etag()
            if before is None:
                return None
            try:
                data = self.fs.cat_file(self.path)
            except FileNotFoundError:
                return None
            if self._etag() == before:  # the content belongs to that etag
                return data, before
        raise StoreError(f"the store lease {self.path} changes too fast to read — retry")

    def _read_back(self, data: bytes) -> None:
        time.sleep(READ_BACK_PAUSE_S)
        current = self.read()
        if current is None or current[0] != data:
            raise LeaseConflictError(LEASE_CHANGED)

    def create(self, data: bytes) -> None:
        if self.conditional:
            try:
                self.fs.pipe_file(self.path, data, mode="create")
            except FileExistsError as err:
                raise LeaseConflictError(LEASE_EXISTS) from err
            return
        if self.fs.exists(self.path):
            raise LeaseConflictError(LEASE_EXISTS)
        self.fs.pipe_file(self.path, data)
        self._read_back(data)

    def replace(self, data: bytes, etag: str) -> None:
        if self.conditional:
            try:
                self.fs.pipe_file(self.path, data, IfMatch=etag)
            except FileNotFoundError as err:
                raise LeaseConflictError(LEASE_CHANGED) from err
            except OSError as err:  # 412 PreconditionFailed
                if "precondition" in str(err).lower() or getattr(err, "errno", None) == 22:
                    raise LeaseConflictError(LEASE_CHANGED) from err
                raise
            return
        current = self.read()
        if current is None or current[1] != etag:
            raise LeaseConflictError(LEASE_CHANGED)
        self.fs.pipe_file(self.path, data)
        self._read_back(data)

    def delete(self, etag: str) -> None:
        current = self.read()
        if current is not None and current[1] == etag:
            self.fs.rm_file(self.path)


def lease_backend(url: str, storage_options: dict[str, Any] | None) -> LeaseBackend:
    """The backend for the store at ``url``."""
    if "://" not in url or url.startswith("file://"):
        return LocalLeaseBackend(Path(url.removeprefix("file://")))
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    conditional = bool({"s3", "s3a"} & set(protocols))
    return FsspecLeaseBackend(fs, f"{root.rstrip('/')}/{LEASE_KEY}", conditional=conditional)
