"""The temporary Prefect server's cached empty schema: kept after a fresh start, copied into
later servers' databases, and never trusted when damaged."""

from __future__ import annotations

import logging
import sqlite3
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from flows import server_db


def _database(path: Path, *, migrated: bool = True) -> Path:
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")  # as Prefect's server keeps it
        db.execute("CREATE TABLE flow (id TEXT)")
        if migrated:
            db.execute("CREATE TABLE alembic_version (version_num TEXT)")
            db.execute("INSERT INTO alembic_version VALUES ('head')")
        db.commit()
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(server_db.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_kept_schema_seeds_the_next_database_as_one_file(cache, tmp_path):
    server_db.keep(_database(tmp_path / "first.db"))
    template = server_db.template_path()
    assert template.parent == cache and template.name.startswith("prefect-")
    assert sorted(p.name for p in cache.iterdir()) == [template.name]  # no -wal, no partial
    assert server_db.seed(tmp_path / "next.db") is True
    with closing(sqlite3.connect(tmp_path / "next.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("head",)]


def test_nothing_cached_or_unmigrated_seeds_nothing(cache, tmp_path):
    assert server_db.seed(tmp_path / "a.db") is False
    server_db.keep(_database(tmp_path / "bare.db", migrated=False))
    assert not server_db.template_path().exists()
    assert server_db.seed(tmp_path / "a.db") is False and not (tmp_path / "a.db").exists()


def test_a_damaged_template_is_dropped_not_copied(cache, tmp_path):
    cache.mkdir()
    server_db.template_path().write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    assert server_db.seed(tmp_path / "a.db") is False
    assert not (tmp_path / "a.db").exists() and not server_db.template_path().exists()


@pytest.mark.server
@pytest.mark.slow
def test_real_servers_start_from_the_cached_schema_and_run_flows(cache, monkeypatch):
    """Two temporary servers in a row: the first creates its schema and keeps it, the
    second starts from the copy, and a flow run on it completes."""
    from prefect import flow

    from flows.runtime import prefect_api

    monkeypatch.delenv("PREFECT_API_URL", raising=False)

    @flow
    def answer() -> int:
        return 42

    # a handler of our own: Prefect's logging set-up replaces the root's (and caplog's)
    seen: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    runtime_logger = logging.getLogger("flows.runtime")
    level = runtime_logger.level
    runtime_logger.setLevel(logging.INFO)
    runtime_logger.addHandler(handler)
    try:
        for expected in ("new", "from the cached empty schema"):
            seen.clear()
            with prefect_api() as url:
                assert urllib.request.urlopen(f"{url}/health", timeout=10).read() == b"true"
                assert answer() == 42
            started = [m for m in seen if "temporary Prefect server" in m]
            assert len(started) == 1 and started[0].endswith(f", {expected})"), started
            assert server_db.template_path().is_file()
    finally:
        runtime_logger.removeHandler(handler)
        runtime_logger.setLevel(level)
