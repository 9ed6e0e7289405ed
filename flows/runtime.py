"""Where flows report to, and what they send: the Prefect API (configured, or one temporary
local server with its own database), the project's log lines, and the run-time settings.

Prefect's ephemeral mode starts a private server inside each process that runs a flow or a
task. Dask worker processes would each start their own, so the CLI starts one temporary
server (SQLite under a fresh temporary folder, removed after; its empty schema copied from
:mod:`flows.server_db`'s cache) and exports its URL before the cluster's worker processes
are spawned. Prefect sends only its own loggers' records to the
API; :func:`forward_project_logs` adds the project's (``plumenet``, ``storage``, ``flows``)
in the process it runs in, so the flow driver and every Dask worker call it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from prefect.context import FlowRunContext, TaskRunContext
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogHandler, APILogWorker
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from flows import server_db
from plumenet.errors import ConfigError

if TYPE_CHECKING:
    from prefect.server.api.server import SubprocessASGIServer

logger = logging.getLogger(__name__)

#: Seconds to wait for the temporary server; a loaded 2-core machine needs more than the default.
STARTUP_TIMEOUT_S = 120
#: The loggers whose records reach the Prefect API inside flow and task runs.
PROJECT_LOGGERS: tuple[str, ...] = ("plumenet", "storage", "flows")
#: Seconds one work unit may run before Prefect fails it (then retries it), when set. Off by
#: default: in a Dask worker thread Prefect can only fail the task once the blocking call in
#: progress returns (and warns about that for every unit).
UNIT_TIMEOUT_ENV = "PLUMENET_UNIT_TIMEOUT_S"


def configured_api_url() -> str | None:
    """The Prefect API this process is configured for (environment or profile), if any."""
    return os.environ.get("PREFECT_API_URL") or get_current_settings().api.url


def require_api(command: str) -> str:
    """The configured Prefect API URL; a :class:`ConfigError` saying how to set one if none
    (a scheduler on an ephemeral server would schedule nothing)."""
    url = configured_api_url()
    if not url:
        raise ConfigError(
            f"`plumenet {command}` needs a Prefect API that outlives this process — start one "
            "(`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api "
            "(or `prefect config set PREFECT_API_URL=...`)"
        )
    return url


def unit_timeout_s() -> float | None:
    """The per-unit task timeout from ``PLUMENET_UNIT_TIMEOUT_S`` (None: no timeout)."""
    raw = os.environ.get(UNIT_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(
            f"{UNIT_TIMEOUT_ENV}={raw!r} is not a positive number of seconds — e.g. 14400 (4 h)"
        )
    return value


class _InRun(logging.Filter):
    """Passes records emitted inside a flow or task run (outside one there is no run to
    attach them to, and Prefect would warn for each)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(
            getattr(record, "flow_run_id", None) or FlowRunContext.get() or TaskRunContext.get()
        )


class ProjectAPILogHandler(APILogHandler):
    """Prefect's API log handler, for the project's loggers, inside runs only."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(_InRun())


def forward_project_logs(level: int = logging.INFO) -> None:
    """Send the project's log records (``level`` and above) to the Prefect API from this
    process; idempotent, and a no-op for a logger Prefect already forwards
    (``PREFECT_LOGGING_EXTRA_LOGGERS``). The console keeps its own level: the CLI's handler
    filters by level itself."""
    for name in PROJECT_LOGGERS:
        project_logger = logging.getLogger(name)
        if not any(isinstance(h, APILogHandler) for h in project_logger.handlers):
            project_logger.addHandler(ProjectAPILogHandler())
        if project_logger.level == logging.NOTSET or project_logger.level > level:
            project_logger.setLevel(level)


@contextmanager
def _server_environment(home: Path, database: Path) -> Iterator[None]:
    """The temporary server's own home and SQLite database (only while it starts: the
    server process copies the environment)."""
    values = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}",
    }
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _own_session_server() -> SubprocessASGIServer:
    """Prefect's temporary-server process, started in a session of its own.

    Ctrl-C in a terminal signals the whole foreground process group. The server used to
    die with the run, and the command then spent minutes retrying its last log and event
    uploads against a closed port. Outside the group it outlives the run's own stop, takes
    the last uploads, and is stopped by :func:`prefect_api` as on any other exit.
    """
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    import prefect  # noqa: PLC0415
    from prefect.server.api.server import SubprocessASGIServer  # noqa: PLC0415

    class OwnSessionServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            # prefect 3.8.8's command and environment, with start_new_session added
            server_env = {
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
            }
            args = [
                sys.executable, "-m", "uvicorn",
                "--app-dir", str(prefect.__module_path__.parent),
                "--factory", "prefect.server.api.server:create_app",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "error", "--lifespan", "on",
            ]  # fmt: skip
            env = {
                **os.environ,
                **server_env,
                **get_current_settings().to_environment_variables(exclude_unset=True),
            }
            return subprocess.Popen(args, env=env, start_new_session=True)

    return OwnSessionServer()


@contextmanager
def prefect_api() -> Iterator[str]:
    """Yield the Prefect API URL, starting a temporary local server when none is configured
    (its database lives in a temporary folder, removed afterwards)."""
    url = configured_api_url()
    if url:
        yield url
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    home = Path(tempfile.mkdtemp(prefix="plumenet-prefect-"))
    database = home / "prefect.db"
    seeded = server_db.seed(database)  # an empty, migrated schema: ~6 s less to start
    # The server (FastAPI, SQLAlchemy: ~1 s to import) loads only when no API is configured.
    server = _own_session_server()
    try:
        with _server_environment(home, database):
            server.start(timeout=STARTUP_TIMEOUT_S)
        if not seeded:
            server_db.keep(database)
        os.environ["PREFECT_API_URL"] = server.api_url
        logger.info(
            "started a temporary Prefect server at %s (database in %s, %s)",
            server.api_url, home, "from the cached empty schema" if seeded else "new",
        )  # fmt: skip
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        _flush_api_logs()
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _flush_api_logs() -> None:
    """Send buffered run logs and events before the temporary server goes away."""
    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
