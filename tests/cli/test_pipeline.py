"""Errors a user can cause in backfill/nightly: one `error:` line, exit 2, nothing written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from plumenet.cli import main
from tests.helpers.flows import write_config


@pytest.fixture
def config(tmp_path):
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model

    save_model(build_model("tiny", seed=0), tmp_path / "tiny", model_id="tiny")
    (tmp_path / "archive").mkdir()
    return write_config(
        tmp_path, archive=tmp_path / "archive", model=str(tmp_path / "tiny"),
        cadence="10min", start="2024-01-01",
    )  # fmt: skip


def _run(args: list[str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "2023-12-30", "--end", "2024-01-02"], "before its grid_start"),
        (["--start", "2024-01-05", "--end", "2024-01-02T00:00"], "empty range"),
        (["--start", "2024-01-02", "--end", "2024-01-02", "--camera", "NOPE"], "NOPE"),
        (["--start", "2024-01-02", "--end", "2024-01-02", "--cluster", "yarn"], "unknown cluster"),
        (["--start", "yesterday", "--end", "2024-01-02"], "yesterday"),
        # pandas reads these, wrongly: 3 January, and an exact midnight that drops the day
        (["--start", "01/03/2024", "--end", "2024-01-05"], "cannot read '01/03/2024'"),
        (["--start", "2024-01-02", "--end", "2024-1-3"], "cannot read '2024-1-3'"),
        (["--start", "2024-01-02", "--end", "2024-01-03", "--window", "31"], "'31' has no unit"),
        (
            ["--start", "2024-01-02", "--end", "2024-01-03", "--memory-limit", "lots"],
            "memory_limit 'lots' is not an amount of memory",
        ),
        (
            ["--start", "2024-01-02", "--end", "2024-01-03", "--memory-limit", "8"],
            "memory_limit '8' has no unit, so Dask would read 8 bytes",
        ),
        (
            ["--start", "2024-01-02", "--end", "2024-01-03", "--memory-limit", "64MiB"],
            "is 64.00 MiB per worker, under the 256 MiB a worker needs",
        ),
        (
            ["--start", "2024-01-02", "--end", "2024-01-03", "--adapt", "4:1"],
            "adapt minimum 4 is above its maximum 1",
        ),
    ],
)
def test_backfill_user_errors(config, extra, message):
    code, lines = _run(["backfill", "--config", str(config), *extra])
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (config.parent / "plumenet.zarr").exists()


def test_backfill_scheduler_and_device_that_are_not_there(config):
    """A scheduler nobody listens at, and a GPU this machine lacks, are one line at once:
    not Dask's 30 s of retries and tracebacks, nor three failed units per camera."""
    import socket

    import torch

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends
    span = ["--start", "2024-01-02", "--end", "2024-01-02"]
    code, lines = _run(["backfill", "--config", str(config), *span,
                        "--cluster", f"tcp://127.0.0.1:{port}"])  # fmt: skip
    assert code == 2 and len(lines) == 1, lines
    assert f"no Dask scheduler answers at tcp://127.0.0.1:{port}" in lines[0]
    if not torch.cuda.is_available():
        code, lines = _run(["backfill", "--config", str(config), *span, "--device", "cuda"])
        assert code == 2 and len(lines) == 1, lines
        assert "--device cuda: this machine has no CUDA device torch can use" in lines[0]
    assert not (config.parent / "plumenet.zarr").exists()


def test_backfill_missing_weights_says_how_to_fix(config, tmp_path):
    text = config.read_text().replace(str(tmp_path / "tiny"), str(tmp_path / "absent"))
    config.write_text(text)
    code, lines = _run(
        ["backfill", "--config", str(config), "--start", "2024-01-02", "--end", "2024-01-02"]
    )
    assert code == 2 and len(lines) == 1
    assert ("not found" in lines[0] and "--model" in lines[0]) or "pass" in lines[0], lines
    assert not (config.parent / "plumenet.zarr").exists()


@pytest.mark.slow
def test_backfill_unreadable_weights_is_one_line_after_the_server_stops(config, tmp_path):
    """The weights are identified while the Prefect API starts; when they cannot be read,
    the command still ends with that one line and exit 2, and writes nothing."""
    weights = tmp_path / "tiny" / "model.safetensors"
    weights.write_bytes(b"\xff" * 1000)
    code, lines = _run(
        ["backfill", "--config", str(config), "--start", "2024-01-02", "--end", "2024-01-02"]
    )
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error:") and str(weights) in lines[0], lines
    assert not (config.parent / "plumenet.zarr").exists()


def test_nightly_bad_lookback_and_every_command_has_help(config):
    code, lines = _run(["nightly", "--config", str(config), "--lookback", "two days"])
    assert (
        code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "two days" in lines[0]
    )
    for command in ("backfill", "nightly", "serve", "demo"):
        code, lines = _run([command, "--help"])
        assert code == 0 and any("--" in line for line in lines)
