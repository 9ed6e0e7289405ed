"""Crash-safe metadata: a driver killed while creating a camera group or growing its time
axis, and drivers changing metadata at the same moment, never strand the store.

Real driver processes (:mod:`tests.helpers.driver`: the driver's own planning code, fake
worker outputs that depend only on the slot) are killed with the ``PLUMENET_TEST_CRASH_AT``
hook (``os._exit`` at that step) and rerun; the rerun's arrays must equal a clean run's and
``xr.open_zarr`` and the catalogue must read the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
import zarr

from plumenet.config import load_config
from plumenet.jobs.catalogue import load_camera
from storage.axis import CRASH_ENV, CRASH_EXIT_CODE, TIME_ARRAYS
from storage.grid import grid_for
from tests.helpers.driver import (
    CAMERA,
    assert_same_store,
    day,
    run_driver,
    start_driver,
    store_arrays,
    write_setup,
)

pytestmark = pytest.mark.slow  # real driver processes: ~6 s per test


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """One archive for every run of this module (so ``source`` paths agree)."""
    root = tmp_path_factory.mktemp("archive")
    write_setup(root)
    return root / "archive"


@pytest.fixture
def setup(archive, tmp_path):
    """A fresh store over the shared archive: ``(config, store)``."""
    return write_setup(tmp_path, archive=archive), tmp_path / "plumenet.zarr"


@pytest.fixture(scope="module")
def clean(archive, tmp_path_factory) -> dict:
    """One uninterrupted run over three days: the reference."""
    root = tmp_path_factory.mktemp("clean")
    config = write_setup(root, archive=archive)
    run = run_driver(config, day(0), day(2))
    assert run.returncode == 0, run.stderr
    return store_arrays(str(root / "plumenet.zarr"))


def _group(store: Path) -> zarr.Group:
    return zarr.open_group(str(store), mode="r", use_consolidated=False)[CAMERA]


def _reads_back(store: Path) -> None:
    """What users do with a store: xarray and the catalogue's loader must read it."""
    ds = xr.open_zarr(str(store), group=CAMERA, consolidated=False)
    assert len({ds[v].shape[0] for v in ds.data_vars if "time" in ds[v].dims}) == 1
    cat = load_camera(str(store), CAMERA)
    assert cat.sizes["time"] > 0


def test_driver_killed_at_group_creation_reruns_to_a_clean_store(clean, setup):
    config, store = setup
    crashed = run_driver(config, day(0), day(2), env={CRASH_ENV: "create_group"})
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    half = _group(store)
    assert "time" in half and "probability" not in half, "the kill should land mid-creation"
    assert half.attrs["n_slots"] == 0
    rerun = run_driver(config, day(0), day(2))
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["units_run"] == 3
    assert_same_store(store_arrays(str(store)), clean)
    _reads_back(store)


def test_driver_killed_while_growing_the_axis_reruns_to_a_clean_store(clean, setup):
    config, store = setup
    first = run_driver(config, day(0), day(0))
    assert first.returncode == 0, first.stderr
    crashed = run_driver(config, day(1), day(2), env={CRASH_ENV: "grow_axis"})
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    half = _group(store)
    assert half["time"].shape[0] > half["status"].shape[0], "the kill should land mid-growth"
    rerun = run_driver(config, day(1), day(2))
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["units_run"] == 2
    assert_same_store(store_arrays(str(store)), clean)
    _reads_back(store)


def _start_together(config: Path, ranges: list[tuple[str, str]], env: dict[str, str]) -> list:
    procs = [start_driver(config, a, b, env=env) for a, b in ranges]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    return [json.loads(out) for out, _ in outs]


def test_two_drivers_creating_one_group_at_once(clean, setup):
    config, store = setup
    outs = _start_together(config, [(day(0), day(2))] * 2, {"PLUMENET_LEASE_WAIT_S": "60"})
    assert sorted(o["units_run"] for o in outs) == [0, 3], "one does the work, none twice"
    assert_same_store(store_arrays(str(store)), clean)


def test_two_extensions_to_different_ends_never_shrink_the_axis(clean, setup):
    config, store = setup
    assert run_driver(config, day(0), day(0)).returncode == 0
    _start_together(config, [(day(1), day(2)), (day(1), day(1))], {"PLUMENET_LEASE_WAIT_S": "60"})
    assert_same_store(store_arrays(str(store)), clean)


def test_two_models_registered_at_once_get_distinct_indices(tmp_path):
    config = write_setup(tmp_path)
    assert run_driver(config, day(0), day(0)).returncode == 0  # model index 0
    procs = [
        start_driver(config, day(0), day(0), env={"DRIVER_MODEL_ID": f"model-{i}",
                                                  "PLUMENET_LEASE_WAIT_S": "60"})
        for i in (1, 2)
    ]  # fmt: skip
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sorted(o["model_index"] for o in outs) == [1, 2]
    models = json.loads(_group(tmp_path / "plumenet.zarr").attrs["models"])
    assert models[0]["id"] == "fake-model"
    assert sorted(m["id"] for m in models[1:]) == ["model-1", "model-2"]


_RACE = """
import sys, time
from storage.zarr_store import ensure_camera, register_model
from tests.helpers.driver import GRID
from plumenet.config import load_config
cfg = load_config(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
grid = ensure_camera(cfg.store, cfg.cameras[0], "2024-03-01", sys.argv[3], grid_shape=GRID)
print(register_model(cfg.store, cfg.cameras[0].id, model_id=sys.argv[4], digest="d", backbone="b"))
"""


def test_raw_metadata_calls_from_four_processes_at_one_instant(tmp_path):
    """Without a driver lease around them, storage's own metadata steps still serialise."""
    config = write_setup(tmp_path)
    at = time.time() + 3.0
    ends = ["2024-03-02", "2024-03-05", "2024-03-03", "2024-03-04"]
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE, str(config), str(at), end, f"m{i}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=Path(__file__).parents[2], env=dict(os.environ))
        for i, end in enumerate(ends)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    assert sorted(int(o) for o, _ in outs) == [0, 1, 2, 3]
    n = grid_for(load_config(config).cameras[0]).slots_to_cover("2024-03-05")  # the longest
    group = _group(tmp_path / "plumenet.zarr")
    lengths = {group[name].shape[0] for name in TIME_ARRAYS}
    assert lengths == {n} and group.attrs["n_slots"] == n
    assert (group["time"][:] == [3600 * k for k in range(n)]).all()
