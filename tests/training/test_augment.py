import pytest
import torch

from plumenet.training.augment import AugmentConfig, augment_batch, color_jitter, resize_pair
from plumenet.training.datasets import IGNORE_INDEX

NO_JITTER = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}


def _square_batch(n=4, size=64):
    images = torch.zeros(n, 3, size, size)
    images[:, 2] = 0.3  # bluish sky everywhere
    masks = torch.zeros(n, size, size, dtype=torch.int64)
    for i in range(n):
        y0, x0 = 8 + 4 * i, 12 + 3 * i
        images[i, 0, y0 : y0 + 20, x0 : x0 + 24] = 1.0
        images[i, 2, y0 : y0 + 20, x0 : x0 + 24] = 0.0
        masks[i, y0 : y0 + 20, x0 : x0 + 24] = 2
    return images, masks


def test_flips_are_exact():
    images, masks = _square_batch()
    g = torch.Generator().manual_seed(0)
    cfg = AugmentConfig(
        hflip=1.0, vflip=0.0, max_rotation=0.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), **NO_JITTER
    )
    out_i, out_m = augment_batch(images, masks, g, cfg)
    torch.testing.assert_close(out_i, images.flip(-1), atol=1e-5, rtol=0)
    assert torch.equal(out_m, masks.flip(-1))
    cfg_v = AugmentConfig(
        hflip=0.0, vflip=1.0, max_rotation=0.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), **NO_JITTER
    )
    out_i, out_m = augment_batch(images, masks, g, cfg_v)
    torch.testing.assert_close(out_i, images.flip(-2), atol=1e-5, rtol=0)
    assert torch.equal(out_m, masks.flip(-2))


def test_mask_moves_with_image():
    images, masks = _square_batch(n=6)
    g = torch.Generator().manual_seed(3)
    cfg = AugmentConfig(**NO_JITTER)
    out_i, out_m = augment_batch(images, masks, g, cfg, out_size=56)
    assert out_i.shape == (6, 3, 56, 56) and out_m.shape == (6, 56, 56)
    assert not torch.equal(out_m, resize_pair(images, masks, 56)[1])  # something moved
    for i in range(6):
        red = out_i[i, 0] > 0.5
        labelled = out_m[i] == 2
        assert labelled.sum() > 50
        inter = (red & labelled).sum().item()
        union = (red | labelled).sum().item()
        assert inter / union > 0.85, f"sample {i}: IoU {inter / union:.2f}"


def test_outside_pixels_get_ignore_index():
    images, masks = _square_batch(n=2)
    g = torch.Generator().manual_seed(1)
    cfg = AugmentConfig(
        hflip=0.0, vflip=0.0, max_rotation=0.0, scale=(1.2, 1.2), ratio=(1.0, 1.0), **NO_JITTER
    )
    _, out_m = augment_batch(images, masks, g, cfg)
    border = torch.cat([out_m[:, 0], out_m[:, -1], out_m[:, :, 0], out_m[:, :, -1]], dim=1)
    assert (border == IGNORE_INDEX).all()
    assert (out_m[:, 32, 32] != IGNORE_INDEX).all()
    cfg_rot = AugmentConfig(max_rotation=20.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), **NO_JITTER)
    _, out_m = augment_batch(images, masks, torch.Generator().manual_seed(5), cfg_rot)
    assert set(out_m.unique().tolist()) <= {0, 2, IGNORE_INDEX}


def test_deterministic_given_generator():
    images, masks = _square_batch()
    a = augment_batch(images, masks, torch.Generator().manual_seed(7))
    b = augment_batch(images, masks, torch.Generator().manual_seed(7))
    c = augment_batch(images, masks, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_color_jitter_range_and_identity():
    images, _ = _square_batch()
    g = torch.Generator().manual_seed(0)
    same = color_jitter(images, AugmentConfig(**NO_JITTER), g)
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)
    out = color_jitter(
        images, AugmentConfig(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1), g
    )
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images)


def test_resize_pair_nearest_mask():
    masks = torch.tensor([[[0, 1], [2, 3]]])
    images = torch.rand(1, 3, 2, 2)
    out_i, out_m = resize_pair(images, masks, 4)
    assert out_i.shape == (1, 3, 4, 4)
    assert torch.equal(
        out_m[0], torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    )


def test_bad_config_and_shapes():
    with pytest.raises(ValueError, match="hflip probability"):
        AugmentConfig(hflip=1.5)
    with pytest.raises(ValueError, match="scale"):
        AugmentConfig(scale=(1.2, 1.0))
    with pytest.raises(ValueError, match="masks must be"):
        augment_batch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 4, 4), torch.Generator())
