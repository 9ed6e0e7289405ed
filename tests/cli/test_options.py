"""One style for the options commands share; `nightly` takes what `backfill` takes; one CSV time
format; `model:` required to segment; `serve` refuses to start without a Prefect API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from plumenet.cli import main
from plumenet.cli.options import CONFIG_HELP
from tests.helpers.flows import write_config

REPO = Path(__file__).resolve().parents[2]
CSV_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


def _option(command: click.Command, flag: str) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and flag in param.opts:
            return param
    return None


def test_shared_options_read_and_help_alike():
    commands = _commands(main)
    with_config = {n: c for n, c in commands.items() if _option(c, "--config")}
    assert {"backfill", "nightly", "serve", "list", "catalogue", "verify"} <= set(with_config)
    for name, command in with_config.items():
        option = _option(command, "--config")
        assert option.metavar == "FILE", name
        assert option.help == CONFIG_HELP, name
        assert option.required, name
    for name in ("backfill", "list"):
        start, end = _option(commands[name], "--start"), _option(commands[name], "--end")
        assert "a date includes that whole day" in end.help, name
        assert start.help == _option(commands["backfill"], "--start").help, name


def test_nightly_takes_the_options_backfill_takes():
    commands = _commands(main)
    backfill = {o for p in commands["backfill"].params for o in p.opts}
    nightly = {o for p in commands["nightly"].params for o in p.opts}
    range_only = {"--start", "--end", "--window", "--overwrite"}
    assert backfill - range_only <= nightly, backfill - range_only - nightly
    assert {"--camera", "--device", "--batch-size", "--json"} <= nightly


def test_anomaly_options_say_one_thing_each():
    commands = _commands(main)
    for name in ("anomaly fit", "anomaly score", "anomaly evaluate"):
        weights = _option(commands[name], "--weights")
        assert weights is not None and "Segmentation model" in weights.help, name
    for name in ("anomaly score", "anomaly evaluate"):
        assert _option(commands[name], "--model").name == "model_dir", name
    assert _option(commands["anomaly fit"], "--model") is None
    assert "config's `model`" in _option(commands["anomaly evaluate"], "--weights").help


def test_csv_times_have_one_format(tmp_path):
    """`plumenet list --csv` and the catalogue tables write the same UTC `...Z` times."""
    from plumenet.jobs.synth_archive import write_archive
    from storage.catalogue import write_tables

    archive = tmp_path / "archive"
    write_archive(
        str(archive), layout="flat", start="2024-01-01", end="2024-01-01T03:00", cadence="1h",
        size=(32, 24), fields={"CAM": "cam"}, missing=0.0,
    )  # fmt: skip
    config = write_config(
        tmp_path, archive=archive, model="demo", cadence="1h", start="2024-01-01",
        fields={"CAM": "cam"},
    )  # fmt: skip
    listed = tmp_path / "list.csv"
    result = CliRunner().invoke(
        main, ["list", "--config", str(config), "--camera", "FLOW", "--start", "2024-01-01",
               "--end", "2024-01-01T03:00", "--csv", str(listed)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    times = pd.read_csv(listed)["time"].tolist()
    assert len(times) == 3
    table = pd.DataFrame({"onset": pd.to_datetime(["2024-01-01T05:00:00+13:00"])})
    paths = write_tables(tmp_path / "tables", {"episodes": table})
    written = pd.read_csv(paths["episodes_csv"])["onset"].iloc[0]
    assert written == "2023-12-31T16:00:00.000000Z"
    assert pd.Timestamp(written) == table["onset"].iloc[0]
    for value in (*times, written):
        assert CSV_TIME.match(value), value


@pytest.mark.parametrize(
    ("args", "where", "what"),
    [
        (["backfill"], "plumenet backfill", "Missing option '--config'."),
        (["backfill", "--config"], "plumenet backfill", "Option '--config' requires an argument."),
        (["nosuch"], "plumenet", "No such command 'nosuch'."),
        (["catalogue", "--window", "1d"], "plumenet catalogue", "No such option '--window'."),
        (["anomaly", "fit", "--bogus"], "plumenet anomaly fit", "No such option '--bogus'."),
        (["anomaly", "fit", "--config"], "plumenet anomaly fit", "Option '--config' requires"),
        (
            ["compare", "--config", "c.yaml", "--eca-null", "nope"],
            "plumenet compare",
            "Invalid value for '--eca-null': 'nope' is not one of",
        ),
    ],
    ids=[
        "missing-option",
        "missing-value",
        "unknown-command",
        "unknown-option",
        "subgroup",
        "subgroup-missing-value",
        "bad-choice",
    ],
)
def test_usage_errors_are_one_line_naming_the_command(args, where, what):
    result = CliRunner().invoke(main, args, prog_name="plumenet")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {where}: {what}"), lines[0]
    assert lines[0].endswith(f"See '{where} --help'."), lines[0]


def test_segmenting_without_model_in_the_config_is_an_error(tmp_path):
    (tmp_path / "archive").mkdir()
    config = write_config(
        tmp_path, archive=tmp_path / "archive", model="demo", cadence="1h", start="2024-01-01"
    )
    raw = yaml.safe_load(config.read_text())
    del raw["model"]
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(
        main, ["backfill", "--config", str(config), "--start", "2024-01-01", "--end", "2024-01-01"]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: the config has no `model:`"), lines
    assert "`model: demo`" in lines[0]
    assert not (tmp_path / "plumenet.zarr").exists()  # nothing written


def test_serve_without_a_prefect_api_exits_2_with_one_line(tmp_path):
    """No ephemeral server that would schedule nothing: one line saying how to get an API."""
    (tmp_path / "archive").mkdir()
    config = write_config(
        tmp_path, archive=tmp_path / "archive", model="demo", cadence="1h", start="2024-01-01"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no profile with an API URL
    proc = subprocess.run(
        [sys.executable, "-c", "from plumenet.cli import main; main()", "serve",
         "--config", str(config)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: `plumenet serve` needs a Prefect API")
    assert "PREFECT_API_URL=" in lines[0] and "prefect server start" in lines[0]


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_unit_timeout_setting_is_checked(monkeypatch, value):
    from flows.runtime import UNIT_TIMEOUT_ENV, unit_timeout_s
    from plumenet.errors import ConfigError

    monkeypatch.setenv(UNIT_TIMEOUT_ENV, "7200")
    assert unit_timeout_s() == 7200.0
    monkeypatch.delenv(UNIT_TIMEOUT_ENV)
    assert unit_timeout_s() is None
    monkeypatch.setenv(UNIT_TIMEOUT_ENV, value)
    with pytest.raises(ConfigError, match=rf"{UNIT_TIMEOUT_ENV}='{value}' is not a positive"):
        unit_timeout_s()


def test_progress_without_a_terminal_writes_lines(monkeypatch, capsys):
    from plumenet.cli import progress as progress_module

    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)
    with progress_module.progress(5, "anomaly fit CAM", tty=False) as advance:
        for _ in range(5):
            advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("anomaly fit CAM: 1/5 frames, ")
    assert lines[-1].startswith("anomaly fit CAM: 5/5 frames, ")
    assert len(lines) == 6  # one per step, and the final one


def test_notices_reach_the_console_without_verbose():
    """Progress lines and "nothing to do" are INFO records marked as notices: a cron log
    shows them at the default level, other INFO records stay hidden."""
    import io
    import logging

    from plumenet.cli import NoticeOrLevel

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(NoticeOrLevel(logging.WARNING))
    log = logging.getLogger("plumenet.test_notices")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("progress: 3/9 units", extra={"notice": True})
        log.info("chatter")
        log.warning("unreadable frame x")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["progress: 3/9 units", "unreadable frame x"]
