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
    ],
)
def test_backfill_user_errors(config, extra, message):
    code, lines = _run(["backfill", "--config", str(config), *extra])
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
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
