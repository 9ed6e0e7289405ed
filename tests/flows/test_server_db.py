"""The temporary Prefect server's cached empty schema: kept after a fresh start, copied into
later servers' databases, and never trusted when damaged."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from flows import server_db

REPO = Path(__file__).resolve().parents[2]


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


_TWO_SERVERS = """
import urllib.request
from prefect import flow
from flows import server_db
from flows.runtime import prefect_api

seeded = []
seed = server_db.seed
server_db.seed = lambda database: seeded.append(seed(database)) or seeded[-1]

@flow
def answer():
    return 42

for run in range(2):
    with prefect_api() as url:
        health = urllib.request.urlopen(url + "/health", timeout=10).read()
        print("RUN", run, health == b"true", answer(), seeded[-1], flush=True)
"""


@pytest.mark.server
@pytest.mark.slow
def test_real_servers_start_from_the_cached_schema_and_run_flows(cache, tmp_path):
    """Two temporary servers in a fresh process with no Prefect API configured: the first
    creates its schema and keeps it, the second starts from the copy, and a flow run on
    each completes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update({server_db.CACHE_ENV: str(cache), "PREFECT_HOME": str(tmp_path / "home"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO)})  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _TWO_SERVERS], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [line for line in proc.stdout.splitlines() if line.startswith("RUN ")]
    assert runs == ["RUN 0 True 42 False", "RUN 1 True 42 True"], proc.stdout[-2000:]
    assert [p.name for p in cache.iterdir()] == [server_db.template_path().name]
