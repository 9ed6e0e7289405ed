"""AnomalyScorer: one-pass segmentation and scores, backbone and size checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from plumenet.anomaly.features import AnomalyModelError
from plumenet.anomaly.files import load_padim, save_padim
from plumenet.anomaly.fit import fit_padim
from plumenet.anomaly.scorer import AnomalyScorer
from plumenet.model.registry import build_model
from tests.helpers.model import frame_batches


def test_segment_and_score_shares_one_pass(tiny, rng):
    padim = fit_padim(tiny, frame_batches(rng, 2), n_channels=8)
    scorer = AnomalyScorer(padim, tiny)
    frames = frame_batches(rng, 1)[0]
    x = tiny.normalize(torch.from_numpy(frames).permute(0, 3, 1, 2))
    logits, scores = scorer.segment_and_score(x)
    with torch.no_grad():
        expected = tiny.forward_grid(x)
    torch.testing.assert_close(logits, expected)
    np.testing.assert_allclose(scores, scorer.score_frames(frames), rtol=1e-5)


def test_mismatched_backbone_is_refused(tiny, rng, tmp_path: Path):
    padim = fit_padim(tiny, frame_batches(rng, 2), n_channels=8)
    save_padim(padim, tmp_path / "padim")
    other = build_model(tiny.config, seed=1)
    with pytest.raises(AnomalyModelError, match=r"fitted on backbone .* refit it with"):
        AnomalyScorer(load_padim(tmp_path / "padim"), other, source=str(tmp_path / "padim"))


def test_wrong_frame_size_is_refused(tiny, rng):
    padim = fit_padim(tiny, frame_batches(rng, 2), n_channels=8)
    scorer = AnomalyScorer(padim, tiny)
    with pytest.raises(ValueError, match="fitted on 112 x 112 frames, got 56 x 56"):
        scorer.score_frames(frame_batches(rng, 1, size=56)[0])


def test_predictor_scores_with_the_saved_score_kind(tiny, rng, tmp_path: Path):
    """The work unit's path: a saved wNLML / raw-max model, loaded and bound to the
    segmentation model, gives the same scores through ``Predictor.predict(scorer=...)``
    as the model it was fitted as; the default score kind gives other scores."""
    from plumenet.inference.predictor import Predictor
    from plumenet.model.loaded import LoadedModel, weights_digest

    loaded = LoadedModel(
        model=tiny,
        model_id="tiny-112",
        digest=weights_digest(tiny.state_dict()),
        backbone="tiny",
        is_demo=False,
        source="tests",
    )
    batches = frame_batches(rng, 2)
    options = {"mode": "weighted", "distance": "nlml", "reduction": "max", "layer_weights": "depth"}
    fitted = fit_padim(tiny, batches, n_channels=8, **options)
    save_padim(fitted, tmp_path / "padim")
    scorer = AnomalyScorer(load_padim(tmp_path / "padim"), loaded)
    frames = frame_batches(rng, 1)[0]
    got = Predictor(loaded, device="cpu", batch_size=2).predict(frames, scorer=scorer).anomaly
    np.testing.assert_allclose(got, fitted.score(frames).numpy(), rtol=1e-5)
    default = fit_padim(tiny, batches, n_channels=8, mode="weighted")
    assert not np.allclose(got, default.score(frames).numpy(), rtol=1e-2)
