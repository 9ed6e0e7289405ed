"""The store lease: one object in the store that says which driver may change it.

A driver takes the lease (:func:`store_lease`) before it changes metadata or dispatches
units, a background thread renews it while the driver runs, and it is deleted at the end.
A second driver waits (bounded) and then fails with one line naming the holder and the
expiry; a lease whose expiry has passed (its driver was killed) is taken over.

The object is ``<store>/.plumenet-lease.json`` (owner, host, pid, token, expiry). Taking and
renewing it are compare-and-swap steps, so two drivers can never both hold it:

- local disk: the read-compare-write runs under ``flock`` on the store directory;
- S3: conditional puts (``If-None-Match: *`` to create, ``If-Match: <etag>`` to renew or
  take over), which AWS S3 and moto support;
- any other fsspec protocol: write, then read back after a short pause and keep the lease
  only if our token is there (a window of about that pause in which two drivers racing for
  a free lease could both write; the later write wins and the earlier driver loses the
  lease at its first renewal).

Storage's own metadata steps (:func:`storage.zarr_store.ensure_camera`,
:func:`~storage.zarr_store.register_model`) take the lease themselves through
:func:`metadata_lease` unless this process already holds it, so they are serialised even
when called outside a driver.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from plumenet.errors import StoreError
from storage.lease_objects import LEASE_CHANGED, LeaseConflictError, lease_backend

logger = logging.getLogger(__name__)

#: How long a lease lives without renewal (seconds); renewed every third of it.
DEFAULT_TTL_S = 60.0
#: How long storage's own metadata steps wait for another driver's lease (seconds).
METADATA_WAIT_S = 120.0


class LeaseHeldError(StoreError):
    """Another driver holds the store's lease."""


@dataclass(frozen=True)
class LeaseRecord:
    """What the lease object holds."""

    owner: str
    host: str
    pid: int
    token: str
    acquired: float
    expires: float

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> LeaseRecord | None:
        """The record, or ``None`` for a damaged object (then it may be taken over)."""
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None

    def expired(self, now: float) -> bool:
        return now >= self.expires

    def holder_dead(self) -> bool:
        """Whether the holder is a process of this host that no longer runs (its lease
        may be taken at once instead of after its expiry)."""
        if self.host != socket.gethostname() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self) -> str:
        until = pd.Timestamp(self.expires, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
        return f"{self.owner} on {self.host} (pid {self.pid}), lease until {until} UTC"


def _store_key(url: str) -> str:
    return url.removeprefix("file://").rstrip("/")


class StoreLease:
    """A driver's hold on one store: taken, renewed by a daemon thread, released."""

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        owner: str = "plumenet driver",
        ttl_s: float = DEFAULT_TTL_S,
        wait_s: float = 0.0,
        poll_s: float = 0.5,
    ) -> None:
        self.url = url
        self.backend = lease_backend(url, storage_options)
        self.owner, self.ttl_s, self.wait_s, self.poll_s = owner, ttl_s, wait_s, poll_s
        self.token = uuid.uuid4().hex
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    def _record(self, acquired: float) -> bytes:
        now = time.time()
        return LeaseRecord(
            owner=self.owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            token=self.token,
            acquired=acquired,
            expires=now + self.ttl_s,
        ).encode()

    def _try_take(self) -> LeaseRecord | None:
        """Take the lease if free or expired; else the holder's record."""
        current = self.backend.read()
        data = self._record(time.time())
        if current is None:
            self.backend.create(data)
        else:
            record = LeaseRecord.decode(current[0])
            if record is not None and record.token == self.token:
                self.etag = current[1]  # our own write, answered late (a retried request)
                return None
            if record is not None and not record.expired(time.time()):
                if not record.holder_dead():
                    return record
                logger.warning("store %s: the lease holder %s is dead; taking over", self.url,
                               record.describe())  # fmt: skip
            elif record is not None:
                logger.warning("store %s: taking over the expired lease of %s", self.url,
                               record.describe())  # fmt: skip
            self.backend.replace(data, current[1])
        mine = self.backend.read()
        if mine is None or mine[0] != data:
            raise LeaseConflictError(LEASE_CHANGED)
        self.etag = mine[1]
        return None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                holder = self._try_take()
            except LeaseConflictError:
                holder = None  # someone else moved first: look again
            else:
                if holder is None:
                    break
            if time.monotonic() >= deadline and holder is not None:
                raise LeaseHeldError(
                    f"store {self.url} is in use by {holder.describe()} — wait for that run to "
                    "finish; if it was killed, rerun after the lease expires"
                )
            time.sleep(self.poll_s)
        self._thread = threading.Thread(target=self._renew_loop, name="store-lease", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        """Push the expiry forward (compare-and-swap on our last etag)."""
        with self._mutex:
            if self.etag is None or self.lost:
                return
            current = self.backend.read()
            record = LeaseRecord.decode(current[0]) if current else None
            if current is None or record is None or record.token != self.token:
                self.lost = True
                logger.error("store %s: the lease was lost (taken over or removed)", self.url)
                return
            data = self._record(record.acquired)
            # judged below: a retried request of ours also answers "conflict"
            with contextlib.suppress(LeaseConflictError):
                self.backend.replace(data, current[1])
            latest = self.backend.read()
            mine = LeaseRecord.decode(latest[0]) if latest else None
            if latest is None or mine is None or mine.token != self.token:
                self.lost = True
                self.etag = None
                logger.error("store %s: the lease was taken over while renewing", self.url)
                return
            self.etag = latest[1]

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.renew()
            except Exception as err:  # noqa: BLE001 - a failed renewal is retried next tick
                logger.warning("store %s: lease renewal failed (%s); retrying", self.url, err)

    def check(self) -> None:
        """Raise if the lease was lost (before a metadata change)."""
        if self.lost:
            raise StoreError(
                f"store {self.url}: this driver lost its lease (it was not renewed in time and "
                "another driver took over) — stop and rerun"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl_s)
        with self._mutex:
            if self.etag is not None and not self.lost:
                self.backend.delete(self.etag)
            self.etag = None


_HELD: dict[str, StoreLease] = {}
_HELD_LOCK = threading.Lock()


def held_lease(url: str) -> StoreLease | None:
    """The lease this process holds on ``url``, if any."""
    with _HELD_LOCK:
        return _HELD.get(_store_key(url))


@contextlib.contextmanager
def store_lease(
    url: str,
    storage_options: dict[str, Any] | None = None,
    *,
    owner: str = "plumenet driver",
    ttl_s: float = DEFAULT_TTL_S,
    wait_s: float = 0.0,
) -> Iterator[StoreLease]:
    """Hold the store's lease for the block (re-entrant within one process)."""
    existing = held_lease(url)
    if existing is not None:
        existing.check()
        yield existing
        return
    lease = StoreLease(url, storage_options, owner=owner, ttl_s=ttl_s, wait_s=wait_s)
    lease.acquire()
    with _HELD_LOCK:
        _HELD[_store_key(url)] = lease
    try:
        yield lease
    finally:
        with _HELD_LOCK:
            _HELD.pop(_store_key(url), None)
        lease.release()


def metadata_lease(
    url: str, storage_options: dict[str, Any] | None = None
) -> contextlib.AbstractContextManager[StoreLease]:
    """The lease around one metadata step: this process's, or a short one of its own."""
    return store_lease(
        url, storage_options, owner="plumenet (a metadata change)", wait_s=METADATA_WAIT_S
    )
