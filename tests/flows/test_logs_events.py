"""What an operator sees in Prefect: the project's own log lines in the flow run, one event
per new episode, the catalogue deployment's trigger, typed parameters, the temporary server's
own database, and `serve` refusing to run without an API.

One real `prefect server start` serves every test of this module that needs a server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers.catalogue import make_store
from tests.helpers.flows import write_config
from tests.helpers.prefect import prefect_server_process

REPO = Path(__file__).resolve().parents[2]
START, LAST_DAY = "2024-02-01", "2024-02-02"  # two daily units


# ------------------------------------------------------------------ without a server


def test_flow_parameters_are_typed_and_described():
    from flows.pipeline import backfill, nightly
    from flows.science import catalogue

    schema = backfill.parameters.model_dump()["properties"]
    assert {f["format"] for f in schema["start"]["anyOf"]} == {"date", "date-time"}
    assert {f["format"] for f in schema["end"]["anyOf"]} == {"date", "date-time"}
    assert "progress" not in schema  # a terminal detail, not a deployment parameter
    assert "progress" not in nightly.parameters.model_dump()["properties"]
    for flow in (backfill, nightly, catalogue):
        for name, prop in flow.parameters.model_dump()["properties"].items():
            assert prop.get("description"), f"{flow.name}.{name} has no description"
    lookback = nightly.parameters.model_dump()["properties"]["lookback"]
    assert lookback["format"] == "duration" and lookback["default"] == "P2D"
    assert schema["batch_size"]["minimum"] == 1


def test_flow_parameters_keep_the_command_line_meaning():
    from prefect.exceptions import ParameterTypeError

    from flows.pipeline import backfill, nightly
    from plumenet.timeutil import parse_end

    args = {"config": "c.yaml", "start": "2024-02-01", "end": "2024-02-02"}
    got = backfill.validate_parameters(args)
    assert got["start"] == date(2024, 2, 1) and not isinstance(got["start"], datetime)
    assert parse_end(got["end"]) == pd.Timestamp("2024-02-03", tz="UTC")  # whole day
    exact = backfill.validate_parameters({**args, "end": "2024-02-02T00:00:00Z"})
    assert parse_end(exact["end"]) == pd.Timestamp("2024-02-02", tz="UTC")
    for text in ("2D", "P2D", "48h"):
        value = nightly.validate_parameters({"config": "c.yaml", "lookback": text})["lookback"]
        assert value == timedelta(days=2), text
    with pytest.raises(ParameterTypeError, match=r"start"):
        backfill.validate_parameters({**args, "start": "yesterday"})
    with pytest.raises(ParameterTypeError, match=r"batch_size"):
        backfill.validate_parameters({**args, "batch_size": 0})


def test_catalogue_deployment_is_triggered_by_nightly_completion_only():
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    deployments = yaml.safe_load((REPO / "deployments/prefect.yaml").read_text())["deployments"]
    (catalogue,) = [d for d in deployments if d["name"] == "catalogue"]
    assert catalogue["entrypoint"] == "flows/science.py:catalogue"
    (raw,) = catalogue["triggers"]
    client_side = DeploymentEventTrigger.model_validate(raw)  # what `prefect deploy` reads
    trigger = EventTrigger.model_validate(
        client_side.model_dump(include={"match", "match_related", "expect", "posture"})
    )

    def completed(flow_name: str, state: str = "Completed") -> ReceivedEvent:
        return ReceivedEvent.model_validate(
            {
                "occurred": datetime.now().astimezone(),
                "event": f"prefect.flow-run.{state}",
                "resource": {"prefect.resource.id": "prefect.flow-run.1234"},
                "related": [
                    {
                        "prefect.resource.id": "prefect.flow.99",
                        "prefect.resource.role": "flow",
                        "prefect.resource.name": flow_name,
                    },
                ],
                "id": "2bd20ac6-5bd8-4b64-9e63-2d0e9e4f2b8a",
            }
        )

    assert trigger.covers(completed("nightly"))
    assert not trigger.covers(completed("backfill"))  # nightly's own subflow
    assert not trigger.covers(completed("nightly", "Failed"))


# ------------------------------------------------------------------ one real server


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free port, its own PREFECT_HOME; this process (and the
    Dask workers it spawns) talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    tmp = tmp_path_factory.mktemp("prefect")
    with prefect_server_process(tmp) as env:
        url = env["PREFECT_API_URL"]
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            with temporary_settings({PREFECT_API_URL: url}):
                _fresh_event_workers()  # the process's events client may point elsewhere
                yield url
                _fresh_event_workers()
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


def _fresh_event_workers() -> None:
    """Send what is queued, then drop the process-wide events worker so the next event opens
    a client on the current API URL (its key does not include the URL)."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)
    EventsWorker.reset_instances_for_fork()


def _post(url: str, payload: dict) -> dict | list:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _run_logs(api: str, flow_run_id: str, want: list[str], timeout: float = 30) -> list[dict]:
    """The flow run's log records, polled until every ``want`` text is there (logs travel
    in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        logs = _post(f"{api}/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}})
        text = "\n".join(r["message"] for r in logs)
        if all(w in text for w in want) or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)


def _events(api: str, name: str, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        page = _post(
            f"{api}/events/filter",
            {"filter": {"event": {"name": [name]}, "occurred": {"since": "2000-01-01T00:00:00Z"}},
             "limit": 50},
        )  # fmt: skip
        events = page["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


@pytest.mark.server
@pytest.mark.slow
def test_project_log_lines_reach_the_flow_run(prefect_server, tmp_path, monkeypatch):
    """Driver lines (units to process, progress) and worker lines (unreadable frame) are
    in the flow run's logs on the server, not only on a console."""
    import flows.pipeline as pipeline
    from plumenet.jobs.synth_archive import write_archive
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model

    monkeypatch.setattr(pipeline, "PROGRESS_LOG_EVERY_S", 0.0)  # a progress line per unit
    model = tmp_path / "tiny"
    save_model(build_model("tiny", seed=0), model, model_id="tiny-logs-test")
    archive = tmp_path / "archive"
    write_archive(
        str(archive), layout="flat", start=pd.Timestamp(START, tz="UTC"),
        end=pd.Timestamp(LAST_DAY, tz="UTC") + pd.Timedelta(days=1), cadence="3h", seed=3,
        broken=2, size=(96, 72), fields={"CAM": "flowcam"}, camera="FLOW",
    )  # fmt: skip
    config = write_config(tmp_path, archive=archive, model=str(model), cadence="3h", start=START)
    state = pipeline.backfill(
        config=str(config), start=START, end=LAST_DAY,
        cluster={"workers": 1, "threads_per_worker": 1}, return_state=True,
    )  # fmt: skip
    report = state.result()
    assert sum(r["unreadable"] for r in report["cameras"]) >= 1
    want = ["units to process", "unreadable frame", "progress: 2/2 units"]
    logs = _run_logs(prefect_server, str(state.state_details.flow_run_id), want)
    messages = [r["message"] for r in logs]
    for text in want:
        assert any(text in m for m in messages), f"no {text!r} in the run's logs: {messages}"
    by_text = {t: [r for r in logs if t in r["message"]] for t in want}
    assert all(r["name"].startswith("plumenet.") for r in by_text["unreadable frame"])
    assert all(r["task_run_id"] for r in by_text["unreadable frame"])  # from the worker
    assert all(r["name"] == "flows.pipeline" for r in by_text["progress: 2/2 units"])


@pytest.mark.server
@pytest.mark.slow
def test_new_episodes_emit_one_event_each(prefect_server, tmp_path):
    """The first catalogue announces every episode; a rerun finds nothing new; the timeline
    is an inline PNG a remote UI can show."""
    from flows.science import catalogue
    from plumenet.jobs.notify import EPISODE_STARTED

    cfg_path, _ = make_store(tmp_path, np.random.default_rng(4), days=4)
    paths = catalogue(config=str(cfg_path), out=str(tmp_path / "catalogue"))
    (camera,) = paths
    table = pd.read_csv(paths[camera]["episodes_csv"])
    assert len(table) >= 2
    events = _events(prefect_server, EPISODE_STARTED, len(table))
    assert len(events) == len(table)
    got = sorted((e["payload"]["class"], e["payload"]["onset"]) for e in events)
    onsets = pd.to_datetime(table["onset"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got == sorted(zip(table["class"], onsets, strict=True))
    for event in events:
        assert event["resource"]["prefect.resource.id"] == f"plumenet.camera.{camera}"
        assert event["payload"]["peak_time"] and 0 < event["payload"]["peak_fraction"] <= 1
        roles = {r["prefect.resource.role"] for r in event["related"]}
        assert "flow-run" in roles  # the catalogue run that found it
    catalogue(config=str(cfg_path), out=str(tmp_path / "catalogue"))
    time.sleep(2)
    assert len(_events(prefect_server, EPISODE_STARTED, len(table) + 1, timeout=3)) == len(table)
    artifacts = _post(f"{prefect_server}/artifacts/filter", {"artifacts": {"key": {"any_": [
        f"timeline-{camera.lower().replace('.', '-').replace('_', '-')}"]}}})  # fmt: skip
    assert artifacts and artifacts[0]["type"] == "markdown"
    assert "](data:image/png;base64,iVBORw0KGgo" in artifacts[0]["data"]


# ------------------------------------------------------------------ the CLI's own server

_TEMPORARY_SERVER = """
import glob, os, sys, tempfile
import logging
from prefect import flow
from flows.runtime import forward_project_logs, prefect_api

@flow
def hello():
    forward_project_logs()  # what every plumenet flow and task does first
    logging.getLogger("plumenet.test").info("hello from a project logger")

with prefect_api() as url:
    homes = glob.glob(os.path.join(tempfile.gettempdir(), "plumenet-prefect-*"))
    assert len(homes) == 1, homes
    hello()
    from prefect.logging.handlers import APILogWorker
    APILogWorker.drain_all(timeout=10)  # logs travel in batches
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        logs = client.read_logs()
    print("RUNS", len(runs), "DB", os.path.exists(os.path.join(homes[0], "prefect.db")))
    print("LOGS", [l.message for l in logs if "project logger" in l.message])
print("LEFT", glob.glob(os.path.join(tempfile.gettempdir(), "plumenet-prefect-*")))
"""


@pytest.mark.server
@pytest.mark.slow
def test_temporary_server_has_its_own_database_removed_after(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    home = tmp_path / "home"
    env.update({"PREFECT_HOME": str(home), "TMPDIR": str(tmp_path / "tmp"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO)})  # fmt: skip
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _TEMPORARY_SERVER], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "RUNS 1 DB True" in out  # a fresh database: only this run, in the temp folder
    assert "LOGS ['hello from a project logger']" in out
    assert "LEFT []" in out  # removed afterwards
    assert not (home / "prefect.db").exists()  # the shared ~/.prefect database untouched
