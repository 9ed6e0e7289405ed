"""Anomaly model files: round trips and the errors of unreadable directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plumenet.anomaly.features import AnomalyModelError
from plumenet.anomaly.files import load_padim, save_padim
from plumenet.anomaly.fit import fit_padim
from plumenet.anomaly.scorer import AnomalyScorer
from tests.helpers.model import frame_batches


def test_round_trip_gives_identical_scores(tiny, rng, tmp_path: Path):
    padim = fit_padim(tiny, frame_batches(rng, 3), n_channels=16, seed=7, mode="weighted")
    frames = np.concatenate(frame_batches(rng, 2))
    before = AnomalyScorer(padim, tiny).score_frames(frames)
    out = save_padim(padim, tmp_path / "padim")
    assert (out / "padim.json").is_file()
    assert (out / "padim.safetensors").is_file()
    loaded = load_padim(out)
    assert loaded.describe() == padim.describe()
    with pytest.raises(ValueError, match="no backbone attached"):
        loaded.score(frames)
    np.testing.assert_array_equal(loaded.score(frames, tiny).numpy(), before)
    np.testing.assert_array_equal(padim.score(frames).numpy(), before)  # attached by fit
    after = AnomalyScorer(loaded, tiny, source=str(out)).score_frames(frames)
    assert after.dtype == np.float32
    assert after.shape == (8,)
    np.testing.assert_array_equal(before, after)


def test_load_padim_errors(tmp_path: Path):
    with pytest.raises(AnomalyModelError, match=r"padim\.json and padim\.safetensors"):
        load_padim(tmp_path)
    (tmp_path / "padim.json").write_text('{"format": "other"}')
    (tmp_path / "padim.safetensors").write_bytes(b"")
    with pytest.raises(AnomalyModelError, match="cannot read anomaly model"):
        load_padim(tmp_path)


def test_round_trip_keeps_the_score_kind(tiny, rng, tmp_path: Path):
    """distance, image score, sigma and layer weights are saved: the loaded model scores
    the same way, and differently from a default model on the same statistics."""
    import json

    batches = frame_batches(rng, 3)
    options = {"distance": "nlml", "reduction": "max", "sigma": 2.5, "layer_weights": [1, 3]}
    padim = fit_padim(tiny, batches, n_channels=16, seed=7, mode="weighted", **options)
    frames = np.concatenate(frame_batches(rng, 2))
    before = padim.score(frames).numpy()
    out = save_padim(padim, tmp_path / "padim")
    doc = json.loads((out / "padim.json").read_text())
    assert doc["format_version"] == 2
    assert {k: doc[k] for k in options} == {**options, "layer_weights": [1.0, 3.0]}
    assert doc["weights"] == [0.25, 0.75]
    loaded = load_padim(out)
    assert (loaded.distance, loaded.reduction, loaded.sigma) == ("nlml", "max", 2.5)
    assert loaded.describe() == padim.describe()
    for key in ("log_det_0", "log_det_1", "weights"):
        assert torch.equal(getattr(loaded, key), getattr(padim, key))
    np.testing.assert_array_equal(loaded.score(frames, tiny).numpy(), before)
    default = fit_padim(tiny, batches, n_channels=16, seed=7, mode="weighted")
    assert not np.allclose(default.score(frames).numpy(), before)


def test_version_1_files_score_as_before(tiny, rng, tmp_path: Path):
    """A file written before NLML and the blur (no log-determinants, no score settings)
    loads as raw-max Mahalanobis with 1/RMS weights, and its log-determinants are rebuilt."""
    import json

    from safetensors.torch import load_file, save_file

    padim = fit_padim(tiny, frame_batches(rng, 3), n_channels=16, mode="weighted", reduction="max")
    out = save_padim(padim, tmp_path / "padim")
    doc = json.loads((out / "padim.json").read_text())
    for key in ("distance", "sigma", "layer_weights"):
        del doc[key]
    doc["format_version"] = 1
    (out / "padim.json").write_text(json.dumps(doc))
    state = load_file(str(out / "padim.safetensors"))
    save_file(
        {k: v for k, v in state.items() if not k.startswith("log_det")},
        str(out / "padim.safetensors"),
    )
    old = load_padim(out)
    assert (old.distance, old.reduction, old.weighting) == ("mahalanobis", "max", "rms")
    frames = np.concatenate(frame_batches(rng, 1))
    np.testing.assert_array_equal(old.score(frames, tiny).numpy(), padim.score(frames).numpy())
    torch.testing.assert_close(old.log_det_0, padim.log_det_0, rtol=1e-4, atol=1e-3)
    del state["mean_0"]
    save_file(state, str(out / "padim.safetensors"))
    with pytest.raises(AnomalyModelError, match=r"inconsistent .*missing tensor 'mean_0'"):
        load_padim(out)
