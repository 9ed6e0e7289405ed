"""`prefect deploy` from deployments/prefect.yaml into a real server, run by a process worker."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image

from storage.layouts import format_path
from tests.helpers.flows import write_config
from tests.helpers.prefect import prefect_server_process

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _prefect(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    prefect = str(Path(sys.executable).parent / "prefect")
    proc = subprocess.run(
        [prefect, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def prefect_server(tmp_path):
    extra = {"PLUMENET_HOME": str(REPO), "COLUMNS": "250"}  # rich tables in full
    with prefect_server_process(tmp_path, **extra) as env:
        yield env


def test_backfill_deployment_runs_on_a_process_worker(prefect_server, tmp_path):
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model

    env = prefect_server
    model = tmp_path / "tiny"
    save_model(build_model("tiny", seed=0), model, model_id="tiny-deploy-test")
    archive = tmp_path / "archive"
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-05-01", periods=12, freq="2h")
    for t in times:
        path = archive / format_path("flat", t.to_pydatetime(), {"CAM": "dep"})
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(buf, "JPEG")
        path.write_bytes(buf.getvalue())
    config = write_config(
        tmp_path, archive=archive, model=str(model), cadence="1h", start="2024-05-01",
        camera="DEP", fields={"CAM": "dep"},
    )  # fmt: skip

    _prefect(["work-pool", "create", "plumenet-process", "--type", "process"], env)
    out = _prefect(
        ["--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"], env
    )
    assert "backfill" in out and "nightly" in out
    listed = _prefect(["deployment", "ls"], env)
    assert "backfill/backfill" in listed and "nightly/nightly" in listed
    _prefect(
        ["deployment", "run", "backfill/backfill",
         "--param", f"config={config}", "--param", "start=2024-05-01",
         "--param", "end=2024-05-01"],
        env,
    )  # fmt: skip
    _prefect(["worker", "start", "--pool", "plumenet-process", "--run-once"], env, timeout=400)

    status = zarr.open_group(str(tmp_path / "plumenet.zarr"), mode="r")["DEP"]["status"][:]
    assert int((status == 1).sum()) + int((status == 3).sum()) == len(times)
    runs = _prefect(["flow-run", "ls"], env)
    backfill_rows = [line for line in runs.splitlines() if "backfill" in line]
    assert backfill_rows and all("COMPLETED" in line for line in backfill_rows), runs


def test_serve_registers_the_nightly_schedule(prefect_server, tmp_path):
    """`plumenet serve` keeps a `nightly` deployment with the 02:00 UTC cron, one run at a time."""
    env = prefect_server
    (tmp_path / "archive").mkdir()
    config = write_config(
        tmp_path, archive=tmp_path / "archive", model="demo", cadence="1h", start="2024-05-01"
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "plumenet.cli", "serve", "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = _prefect(["deployment", "ls"], env)
            if "nightly/nightly" in listed:
                break
            assert serve.poll() is None, "plumenet serve exited"
            time.sleep(1)
        shown = _prefect(["deployment", "inspect", "nightly/nightly"], env)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert "0 2 * * *" in shown
    # one run at a time: the deployment's global concurrency limit is 1
    limit = re.search(r"'global_concurrency_limit': \{[^}]*?'limit': (\d+)", shown, re.S)
    assert limit and limit.group(1) == "1", shown
    assert str(config.resolve()) in shown
