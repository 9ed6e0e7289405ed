"""The ``inference:`` section of cameras.yaml reaches every work unit's job."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from plumenet.config import load_config
from plumenet.jobs.backfill import ModelIdentity, prepare_backfill
from tests.helpers.flows import write_config

MODEL = ModelIdentity(
    spec="test", model_id="test", digest="0" * 64, backbone="none", grid=(4, 5), is_demo=False
)


def _config(tmp_path, inference: dict | None):
    path = write_config(tmp_path, archive=tmp_path / "a", model="demo", cadence="1h",
                        start="2024-01-01")  # fmt: skip
    if inference is not None:
        cfg = yaml.safe_load(path.read_text())
        cfg["inference"] = inference
        path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def _job(cfg):
    start, end = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-03", tz="UTC")
    return prepare_backfill(cfg, start, end, model=MODEL).cameras[0].job


def test_inference_settings_reach_the_unit_job(tmp_path):
    job = _job(_config(tmp_path, {"cuda_batch_size": 64, "compile": True, "gpu_decode": False}))
    assert (job.cuda_batch_size, job.compile, job.gpu_decode) == (64, True, False)


def test_defaults_are_batch_128_gpu_decode_and_no_compile(tmp_path):
    job = _job(_config(tmp_path, None))
    assert (job.cuda_batch_size, job.compile, job.gpu_decode) == (128, False, True)


def test_a_bad_inference_setting_is_a_clear_config_error(tmp_path):
    from plumenet.errors import ConfigError

    with pytest.raises(ConfigError, match="cuda_batch_size"):
        _config(tmp_path, {"cuda_batch_size": 0})
