"""fit_padim: the minimum baseline and the weighted mode's layer balance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plumenet.anomaly.fit import fit_padim
from tests.helpers.model import frame_batches


def test_fit_needs_two_frames(tiny, rng):
    with pytest.raises(ValueError, match="at least 2 baseline frames, got 1"):
        fit_padim(tiny, [frame_batches(rng, 1, batch=1)[0]], n_channels=8)


def test_weighted_mode_balances_layers(tiny, rng):
    batches = frame_batches(rng, 3)
    padim = fit_padim(tiny, batches, layers=[1, 2], n_channels=16, mode="weighted")
    assert padim.num_groups == 2
    assert float(padim.weights.sum()) == pytest.approx(1.0)
    # The weights come from the analytic RMS baseline distance; check it on the baseline.
    x = tiny.normalize(torch.from_numpy(np.concatenate(batches)).permute(0, 3, 1, 2))
    with torch.no_grad():
        dist = padim.group_distances(tiny.backbone.forward_layers(x, padim.layers))
    rms = dist.double().pow(2).mean(dim=(1, 2, 3)).sqrt()
    expected = (1 / rms) / (1 / rms).sum()
    np.testing.assert_allclose(padim.weights.numpy(), expected.numpy(), rtol=1e-3)
    # Weighted per-layer contributions are then equal on the baseline.
    contrib = padim.weights.double() * rms
    assert float(contrib[0]) == pytest.approx(float(contrib[1]), rel=1e-3)


def test_fitted_nlml_is_the_logpdf_under_the_baseline_sample_gaussian(tiny, rng):
    """Fitting + scoring end to end: NLML of a new frame under each position's sample
    mean and covariance (numpy, from the baseline embeddings) plus eps I."""
    from scipy.stats import multivariate_normal

    batches = frame_batches(rng, 4)
    padim = fit_padim(tiny, batches, layers=[1, 2], n_channels=6, distance="nlml", seed=2)
    assert (padim.distance, padim.reduction) == ("nlml", "blur")

    def embed(frames):
        x = tiny.normalize(torch.from_numpy(frames).permute(0, 3, 1, 2))
        with torch.no_grad():
            grids = tiny.backbone.forward_layers(x, padim.layers)
        return grids, padim.embed(grids).double().numpy()

    base = embed(np.concatenate(batches))[1]  # N x C x h x w
    grids, new = embed(frame_batches(rng, 1)[0])
    with torch.no_grad():
        got = padim.score_patches(grids).double().numpy()
    w = base.shape[-1]
    for pos in (0, 9, base.shape[-2] * w - 1):
        i, j = divmod(pos, w)
        cov = np.cov(base[:, :, i, j], rowvar=False) + padim.eps * np.eye(6)
        gauss = multivariate_normal(base[:, :, i, j].mean(axis=0), cov)
        np.testing.assert_allclose(got[:, i, j], -gauss.logpdf(new[:, :, i, j]), rtol=1e-3)


def test_baseline_shortfall_when_frames_do_not_exceed_channels():
    from plumenet.anomaly.fit import baseline_shortfall

    assert baseline_shortfall(101, (100,), 0.01) is None
    assert baseline_shortfall(30, (8, 8, 8), 0.01) is None  # weighted: per-layer Gaussians
    problem = baseline_shortfall(2, (100,), 0.01)
    assert problem is not None
    assert problem.startswith("the baseline has 2 frames for 100 channels per Gaussian")
    assert "rank at most 1" in problem and "--channels below 2" in problem
    assert baseline_shortfall(100, (40, 100), 0.01) is not None  # the largest group counts
