"""A migrated, empty database for the temporary Prefect server, kept between runs.

A temporary server on a fresh SQLite file spends most of its start creating the schema:
8.7 s against 3.1 s on a copy of an empty, migrated database (2-core VM, Prefect 3.8.8;
docs/BENCHMARKS.md). So the first start keeps a copy of its database, taken with SQLite's
backup API right after the server is up and before any run writes to it, and later starts
begin from that copy. Each run still gets its own database in its own temporary folder; the
cache holds only the empty schema, one file per Prefect version (a new version's server
would migrate an older file anyway). A missing, unreadable or damaged copy is ignored and
replaced: the cache can only make a start faster, never fail it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import prefect

logger = logging.getLogger(__name__)

#: Overrides the cache folder (default ``$XDG_CACHE_HOME/plumenet`` or ``~/.cache/plumenet``).
CACHE_ENV = "PLUMENET_CACHE_DIR"


def cache_dir() -> Path:
    """The folder plumenet keeps reusable files in."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "plumenet"


def template_path() -> Path:
    """The empty database for this Prefect version."""
    return cache_dir() / f"prefect-{prefect.__version__}-empty.db"


def _usable(path: Path) -> bool:
    """A whole SQLite file that holds a migrated Prefect schema."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            if db.execute("PRAGMA quick_check").fetchone() != ("ok",):
                return False
            return db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def seed(database: Path) -> bool:
    """Copy the empty database to ``database`` (a new server's file) when there is a usable
    one; returns whether it did."""
    template = template_path()
    if not template.is_file():
        return False
    if not _usable(template):
        logger.info("ignoring the damaged cached Prefect database %s", template)
        template.unlink(missing_ok=True)
        return False
    try:
        shutil.copyfile(template, database)
    except OSError as err:
        logger.debug("could not copy the cached Prefect database: %s", err)
        return False
    return True


def keep(database: Path) -> None:
    """Keep a consistent copy of a server's just-migrated ``database`` as the template
    (written aside, then renamed, so a concurrent start never reads half a file)."""
    template = template_path()
    partial = template.with_name(f"{template.name}.{os.getpid()}.partial")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with (
            closing(sqlite3.connect(database)) as source,
            closing(sqlite3.connect(partial)) as copy,
        ):
            source.backup(copy)
            # one self-contained file: no -wal/-shm beside the template or its readers
            copy.execute("PRAGMA journal_mode=DELETE")
        if _usable(partial):
            partial.replace(template)
    except (OSError, sqlite3.Error) as err:
        logger.debug("could not keep the Prefect database as a template: %s", err)
    finally:
        partial.unlink(missing_ok=True)
