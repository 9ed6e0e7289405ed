"""Frame scores from patch maps (published PaDiM blur vs raw max) and the layer weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from plumenet.anomaly.image_score import gaussian_kernel1d, image_scores, weights_for_layers


def _reference_blur_max(patch_map: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Independent reference: scipy's half-pixel bilinear zoom, then scipy's Gaussian filter
    (mirror borders = kornia/anomalib's ``reflect``, truncated at 4 sigma), then the max."""
    out = []
    for m in patch_map.astype(np.float64):
        up = ndimage.zoom(
            m, (size / m.shape[0], size / m.shape[1]), order=1, grid_mode=True, mode="nearest"
        )
        assert up.shape == (size, size)
        out.append(ndimage.gaussian_filter(up, sigma, mode="mirror", truncate=4.0).max())
    return np.array(out)


@pytest.mark.parametrize(
    ("grid", "size", "sigma"), [((8, 8), 112, 4.0), ((16, 16), 224, 4.0), ((5, 7), 70, 2.5)]
)
def test_blurred_upsampled_max_matches_scipy(rng, grid, size, sigma):
    patch_map = rng.gamma(2.0, 1.0, (3, *grid)).astype(np.float32)
    patch_map[0, 2, 3] += 20.0  # a single hot patch: the blur must spread it exactly
    got = image_scores(torch.from_numpy(patch_map), size, reduction="blur", sigma=sigma)
    np.testing.assert_allclose(
        got.numpy(), _reference_blur_max(patch_map, size, sigma), rtol=2e-5, atol=1e-5
    )


def test_raw_max_and_what_the_blur_changes():
    single = torch.zeros(1, 8, 8)
    single[0, 3, 3] = 10.0  # one outlying patch
    blob = torch.zeros(1, 8, 8)
    blob[0, 2:5, 2:5] = 6.0  # a 3 x 3 patch anomaly, weaker per patch
    maps = torch.cat([single, blob])
    raw = image_scores(maps, 112, reduction="max")
    assert raw.tolist() == [10.0, 6.0]
    blurred = image_scores(maps, 112, reduction="blur")
    # Blurring over 4 px of a 14-px patch keeps most of a wide anomaly, less of a lone
    # patch, so the ranking flips: the reason for the published score.
    assert blurred[1] > blurred[0]
    assert 0 < blurred[0] < 10.0 and blurred[1] == pytest.approx(6.0, rel=1e-3)
    with pytest.raises(ValueError, match="reduction must be one of blur, max; got 'mean'"):
        image_scores(maps, 112, reduction="mean")


def test_gaussian_kernel_is_normalised_and_symmetric():
    k = gaussian_kernel1d(4.0, 16, dtype=torch.float64)
    assert k.shape == (33,)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(k, k.flip(0))
    assert float(k[16] / k[20]) == pytest.approx(np.exp(0.5), rel=1e-12)  # 4 px = 1 sigma


def test_layer_weights_schemes():
    torch.testing.assert_close(
        weights_for_layers("depth", [4, 8, 12]), torch.tensor([1 / 6, 2 / 6, 3 / 6])
    )
    torch.testing.assert_close(  # by depth, whatever order the layers are named in
        weights_for_layers("depth", [12, 4]), torch.tensor([2 / 3, 1 / 3])
    )
    torch.testing.assert_close(
        weights_for_layers("rms", [1, 2], rms=[2.0, 6.0]), torch.tensor([0.75, 0.25])
    )
    torch.testing.assert_close(weights_for_layers([1, 3], [1, 2]), torch.tensor([0.25, 0.75]))
    with pytest.raises(ValueError, match="3 layer weights given for 2 layers"):
        weights_for_layers([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="positive and finite"):
        weights_for_layers([1, 0], [1, 2])
    with pytest.raises(ValueError, match="one of rms, depth or one number per layer"):
        weights_for_layers("deep", [1, 2])
