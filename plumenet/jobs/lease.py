"""The driver's hold on its store for a whole run (see :mod:`storage.lease`).

``with driver_lease(config, "backfill"):`` around everything a driver does to the store
(cover, register, plan, dispatch, consolidate): a second driver on the same store waits up
to ``PLUMENET_LEASE_WAIT_S`` seconds (default 60) and then fails with one line naming the
holder and the lease's expiry. The lease lives ``PLUMENET_LEASE_TTL_S`` seconds (default 60)
without renewal; a background thread renews it every third of that, so a killed driver's
lease is taken over at most that long after the kill.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from plumenet.errors import ConfigError
from storage.lease import DEFAULT_TTL_S, StoreLease, store_lease

if TYPE_CHECKING:
    from plumenet.config import Config

#: Environment variables that tune the lease (seconds).
TTL_ENV = "PLUMENET_LEASE_TTL_S"
WAIT_ENV = "PLUMENET_LEASE_WAIT_S"
#: How long a second driver waits for the lease by default (seconds).
DEFAULT_WAIT_S = 60.0


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds, e.g. {name}=60") from err
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative, e.g. {name}=60")
    return value


@contextlib.contextmanager
def driver_lease(config: Config, what: str = "backfill") -> Iterator[StoreLease]:
    """Hold ``config.store``'s lease for the block (re-entrant in one process)."""
    ttl = _seconds(TTL_ENV, DEFAULT_TTL_S)
    if ttl <= 0:
        raise ConfigError(f"{TTL_ENV} must be positive, e.g. {TTL_ENV}=60")
    wait = _seconds(WAIT_ENV, DEFAULT_WAIT_S)
    with store_lease(
        config.store, config.storage_options, owner=f"plumenet {what}", ttl_s=ttl, wait_s=wait
    ) as lease:
        yield lease
