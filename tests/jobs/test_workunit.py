"""The work unit a Dask worker runs, called directly: statuses, tiling, retries, model cache."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plumenet.jobs.workunit import UnitJob, get_predictor, run_unit


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model

    out = tmp_path_factory.mktemp("wu") / "tiny"
    save_model(build_model("tiny", seed=0), out, model_id="tiny-wu")
    return str(out)


def _jpeg(rng: np.random.Generator, shape: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _unit_and_store(tmp_path, rng, frame_shape=(90, 120), n=6, broken=()):
    from plumenet.config import CameraConfig
    from storage.grid import WorkUnit
    from storage.zarr_store import ensure_camera

    camera = CameraConfig(
        id="WU", archive=str(tmp_path), template="flat", fields={"CAM": "wu"},
        cadence="1h", grid_start=pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime(),
    )  # fmt: skip
    grid = ensure_camera(
        str(tmp_path / "s.zarr"), camera, pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-02", tz="UTC"), grid_shape=(37, 37),
    )  # fmt: skip
    frames = []
    for k in range(n):
        path = tmp_path / f"f{k}.jpg"
        path.write_bytes(b"" if k in broken else _jpeg(rng, frame_shape))
        frames.append((k, str(path), grid.slot_time(k)))
    slot0, slot1 = grid.unit_range(0)
    return WorkUnit("WU", 0, slot0, slot1, tuple(frames)), str(tmp_path / "s.zarr")


def test_unit_writes_statuses_and_grid_sized_arrays(tmp_path, rng, tiny_dir):
    import zarr

    unit, store = _unit_and_store(tmp_path, rng, broken={2})
    job = UnitJob(store=store, camera="WU", model=tiny_dir, model_index=0, batch_size=4)
    summary = run_unit(unit, job)
    assert (summary.ok + summary.unusable, summary.unreadable) == (5, 1)
    assert summary.unreadable_files == [(unit.frames[2][1], "empty file")]
    g = zarr.open_group(store, mode="r")["WU"]
    status = g["status"][:24]
    assert list(status[:6]) == [1, 1, 2, 1, 1, 1] and not status[6:].any()
    assert list(g["model"][:6]) == [0] * 6
    prob = g["probability"][:6]
    assert prob.shape == (6, 6, 37, 37)
    assert (prob[2] == 255).all() and (prob[[0, 1, 3]] <= 254).all()
    frac = g["fraction"][:6]
    np.testing.assert_allclose(frac[[0, 1, 3, 4, 5]].sum(axis=1), 1.0, atol=1e-6)
    assert np.isnan(frac[2]).all()


def test_tiled_unit_stores_pooled_quantized_probabilities(tmp_path, rng, tiny_dir):
    import zarr

    unit, store = _unit_and_store(tmp_path, rng, frame_shape=(600, 900), n=2)
    job = UnitJob(
        store=store, camera="WU", model=tiny_dir, model_index=0, tile=518, tile_stride=400
    )
    summary = run_unit(unit, job)
    assert summary.ok + summary.unusable == 2
    g = zarr.open_group(store, mode="r")["WU"]
    prob = g["probability"][:2].astype(np.int64)
    assert prob.max() <= 254
    # quantized probabilities of the 6 classes still sum to ~254 per grid cell
    assert np.abs(prob.sum(axis=1) - 254).max() <= 6
    np.testing.assert_allclose(g["fraction"][:2].sum(axis=1), 1.0, atol=1e-6)


def test_predictor_is_loaded_once_per_process(tiny_dir):
    a = get_predictor(tiny_dir, device="cpu", batch_size=4)
    b = get_predictor(tiny_dir, device="cpu", batch_size=4)
    assert a is b
    assert get_predictor(tiny_dir, device="cpu", batch_size=8) is not a


def test_a_cached_predictor_of_replaced_weights_is_reloaded(tmp_path):
    """A process that runs units for several runs (the driver's own in-process worker, a
    long-lived worker) must not serve weights replaced on disk since it loaded them."""
    from plumenet.errors import WeightsError
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model

    path = tmp_path / "retrained"
    save_model(build_model("tiny", seed=0), path, model_id="v1")
    first = get_predictor(str(path), device="cpu", batch_size=4)
    save_model(build_model("tiny", seed=1), path, model_id="v2")  # retrained in place
    new_digest = json.loads((path / "config.json").read_text())["digest"]
    assert new_digest != first.loaded.digest

    assert get_predictor(str(path), device="cpu", batch_size=4) is first  # no digest: cached
    second = get_predictor(str(path), device="cpu", batch_size=4, digest=new_digest)
    assert second is not first
    assert (second.loaded.model_id, second.loaded.digest) == ("v2", new_digest)
    assert get_predictor(str(path), device="cpu", batch_size=4, digest=new_digest) is second
    with pytest.raises(WeightsError, match="changed after this run was planned"):
        get_predictor(str(path), device="cpu", batch_size=4, digest=first.loaded.digest)


def test_unit_fills_anomaly_when_the_camera_has_a_fitted_model(tmp_path, rng, tiny_dir):
    import zarr

    from plumenet.anomaly.files import save_padim
    from plumenet.anomaly.fit import fit_padim
    from plumenet.model.weights import load_model

    loaded = load_model(tiny_dir, device="cpu")
    baseline = rng.integers(0, 255, (2, 4, 518, 518, 3), dtype=np.uint8)
    padim = fit_padim(loaded, iter(baseline), layers=[1, 2], n_channels=8, seed=0)
    save_padim(padim, tmp_path / "padim")

    unit, store = _unit_and_store(tmp_path, rng, n=4, broken={1})
    job = UnitJob(
        store=store, camera="WU", model=tiny_dir, model_index=0,
        anomaly_model=str(tmp_path / "padim"),
    )  # fmt: skip
    run_unit(unit, job)
    anomaly = zarr.open_group(store, mode="r")["WU"]["anomaly"][:4]
    assert np.isfinite(anomaly[[0, 2, 3]]).all() and (anomaly[[0, 2, 3]] > 0).all()
    assert np.isnan(anomaly[1])
