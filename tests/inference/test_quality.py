"""The frame-quality rule inside an ROI: brightness and spread over the ROI's pixels only."""

from __future__ import annotations

import numpy as np
import torch

from plumenet.inference.quality import LUMA, USABLE_MIN_STD, frame_quality


def test_roi_quality_is_the_mean_and_spread_of_the_roi_pixels(rng):
    frames = rng.integers(0, 256, (4, 3, 24, 32), dtype=np.uint8)
    frames[1, :, :12] = 90  # uniform inside the ROI (top half), textured outside
    roi = np.zeros((24, 32), dtype=bool)
    roi[:12] = True
    brightness, usable = frame_quality(torch.from_numpy(frames), torch.from_numpy(roi))
    luma = np.tensordot(np.asarray(LUMA), frames.astype(np.float64), axes=([0], [1])) / 255
    inside = luma[:, roi]
    np.testing.assert_allclose(brightness.numpy(), inside.mean(axis=1), rtol=1e-5)
    assert usable.tolist() == (inside.std(axis=1) >= USABLE_MIN_STD).tolist()
    assert usable.tolist() == [True, False, True, True]  # frame 1: nothing to see in the ROI
    whole, _ = frame_quality(torch.from_numpy(frames))
    np.testing.assert_allclose(whole.numpy(), luma.reshape(4, -1).mean(axis=1), rtol=1e-5)
