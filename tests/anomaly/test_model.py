"""PadimModel: options, the seeded channel subset, Mahalanobis distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plumenet.anomaly.fit import fit_padim
from plumenet.anomaly.model import PadimModel
from tests.helpers.model import frame_batches


def test_constructor_checks_options():
    with pytest.raises(ValueError, match="mode must be one of concat, weighted"):
        PadimModel([1], [8], (2, 2), 28, mode="median")
    with pytest.raises(ValueError, match="fewer than the 2 layers"):
        PadimModel([1, 2], [8, 8], (2, 2), 28, n_channels=1)


def test_channel_subset_is_seeded_and_stratified():
    a = PadimModel([1, 2], [32, 96], (2, 2), 28, n_channels=40, seed=3)
    b = PadimModel([1, 2], [32, 96], (2, 2), 28, n_channels=40, seed=3)
    c = PadimModel([1, 2], [32, 96], (2, 2), 28, n_channels=40, seed=4)
    assert torch.equal(a.idx, b.idx)
    assert not torch.equal(a.idx, c.idx)
    assert a.idx.numel() == 40
    assert int((a.idx < 32).sum()) == 10  # proportional to layer widths
    assert "idx" in dict(a.named_buffers())


def test_mahalanobis_matches_numpy(tiny, rng):
    padim = fit_padim(tiny, frame_batches(rng, 3), layers=[1, 2], n_channels=12, seed=1)
    x = torch.from_numpy(frame_batches(rng, 1)[0])
    with torch.no_grad():
        grids = tiny.backbone.forward_layers(tiny.normalize(x.permute(0, 3, 1, 2)), [1, 2])
        patches = padim.score_patches(grids)
        emb = padim.embed(grids).double().numpy()
    mean = padim.mean_0.double().numpy()
    inv = padim.inv_covariance_0.double().numpy()
    _, _, h, w = emb.shape
    for pos in (0, 17, h * w - 1):
        i, j = divmod(pos, w)
        delta = emb[1, :, i, j] - mean[pos]
        expected = np.sqrt(delta @ inv[pos] @ delta)
        assert float(patches[1, i, j]) == pytest.approx(expected, rel=1e-4)


def _known_gaussians(rng, dims, grid=(2, 2), **options):
    """A PadimModel over ``dims``-wide layers (all channels kept) with random statistics."""
    positions = grid[0] * grid[1]
    padim = PadimModel(
        list(range(1, len(dims) + 1)), dims, grid, 28, n_channels=sum(dims), **options
    )
    means, covs = [], []
    for c in padim.group_sizes:
        a = rng.normal(size=(positions, c, c))
        means.append(torch.from_numpy(rng.normal(size=(positions, c))))
        covs.append(torch.from_numpy(a @ a.transpose(0, 2, 1) / c + 0.1 * np.eye(c)))
    padim.set_statistics(means, covs, n_samples=50)
    grids = [torch.from_numpy(rng.normal(size=(3, d, *grid)).astype(np.float32)) for d in dims]
    return padim, means, covs, grids


def _scipy_nlml(padim, means, covs, grids, g, start, stop):
    """-log N(x_p; mu_p, Sigma_p + eps I) for every frame and position of group ``g``."""
    from scipy.stats import multivariate_normal

    emb = torch.cat(grids, dim=1).double().numpy()[:, start:stop]  # B x C_g x h x w
    b, c, h, w = emb.shape
    out = np.empty((b, h, w))
    for pos in range(h * w):
        i, j = divmod(pos, w)
        cov = covs[g][pos].numpy() + padim.eps * np.eye(c)
        out[:, i, j] = -multivariate_normal(means[g][pos].numpy(), cov).logpdf(emb[:, :, i, j])
    return out


def test_nlml_equals_scipy_logpdf(rng):
    padim, means, covs, grids = _known_gaussians(rng, [3, 2], distance="nlml", reduction="max")
    assert padim.idx.tolist() == [0, 1, 2, 3, 4]  # all channels kept: features are the inputs
    expected = _scipy_nlml(padim, means, covs, grids, 0, 0, 5)
    with torch.no_grad():
        got = padim.score_patches(grids).double().numpy()
        scores = padim.score_features(grids).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scores, expected.reshape(3, -1).max(axis=1), rtol=1e-4)
    eye = padim.eps * np.eye(5)
    log_det = [np.linalg.slogdet(c.numpy() + eye)[1] for c in covs[0]]
    np.testing.assert_allclose(padim.log_det_0.numpy(), log_det, rtol=1e-5)


@pytest.mark.parametrize(
    ("weights", "expected"), [("depth", [1 / 3, 2 / 3]), ([3, 1], [0.75, 0.25])]
)
def test_weighted_nlml_is_the_weighted_sum_of_layer_nlml(rng, weights, expected):
    padim, means, covs, grids = _known_gaussians(
        rng, [3, 2], mode="weighted", distance="nlml", layer_weights=weights
    )
    np.testing.assert_allclose(padim.weights.numpy(), expected, rtol=1e-6)
    per_layer = [
        _scipy_nlml(padim, means, covs, grids, 0, 0, 3),
        _scipy_nlml(padim, means, covs, grids, 1, 3, 5),
    ]
    with torch.no_grad():
        got = padim.score_patches(grids).double().numpy()
    np.testing.assert_allclose(
        got, expected[0] * per_layer[0] + expected[1] * per_layer[1], rtol=1e-4, atol=1e-4
    )


def test_layer_weights_scale_each_layers_mahalanobis_distance():
    patches = {}
    for name, weights in (("rms", "rms"), ("depth", "depth"), ("given", [1, 9])):
        padim, _, _, grids = _known_gaussians(
            np.random.default_rng(0), [3, 2], mode="weighted", layer_weights=weights
        )
        with torch.no_grad():
            dist = padim.group_distances(grids)  # same statistics and grids for every scheme
            patches[name] = padim.score_patches(grids)
    torch.testing.assert_close(patches["depth"], dist[0] / 3 + dist[1] * 2 / 3)
    torch.testing.assert_close(patches["given"], 0.1 * dist[0] + 0.9 * dist[1])
    assert not torch.allclose(patches["rms"], patches["depth"], rtol=1e-3)


def test_score_options_are_checked():
    with pytest.raises(ValueError, match="distance must be one of mahalanobis, nlml"):
        PadimModel([1], [8], (2, 2), 28, distance="l2")
    with pytest.raises(ValueError, match="reduction must be one of blur, max"):
        PadimModel([1], [8], (2, 2), 28, reduction="mean")
    with pytest.raises(ValueError, match="sigma must be > 0"):
        PadimModel([1], [8], (2, 2), 28, sigma=0)
    with pytest.raises(ValueError, match="layer weights need mode='weighted'"):
        PadimModel([1, 2], [8, 8], (2, 2), 28, layer_weights="depth")
    with pytest.raises(ValueError, match="1 layer weights given for 2 layers"):
        PadimModel([1, 2], [8, 8], (2, 2), 28, mode="weighted", layer_weights=[1])
