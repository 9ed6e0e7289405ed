"""The frame-quality rule: brightness and usability, inside an optional ROI mask.

``brightness`` is the mean Rec. 601 luminance (0.299 R + 0.587 G + 0.114 B, 0-1 scale)
of the pixels inside the ROI (all pixels when there is none); a frame is ``usable`` when
the standard deviation of that luminance is at least :data:`USABLE_MIN_STD` (0.01, i.e.
2.5 grey levels): blank, black, white or single-colour frames from a dead or covered
camera are not. :func:`frame_quality` is the one implementation, used by the
:class:`~plumenet.inference.predictor.Predictor` for model-size frames and by
:func:`~plumenet.inference.tiling.predict_tiled` for full-size frames; :func:`roi_mask`
brings an ROI mask at any resolution to the frame's.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

__all__ = ["LUMA", "USABLE_MIN_STD", "frame_quality", "roi_mask"]

#: Rec. 601 luminance weights of R, G and B.
LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)
#: A frame whose luminance standard deviation (0-1 scale) is below this is unusable.
USABLE_MIN_STD: float = 0.01


def roi_mask(roi: np.ndarray, height: int, width: int, *, where: str = "") -> np.ndarray:
    """A 2-D ROI mask (non-zero = pixel counts) -> boolean ``height x width`` (nearest).

    Raises ``ValueError`` for a mask that is not 2-D or selects no pixel, before or after
    resizing (``where`` names the target size in that message).
    """
    mask = np.asarray(roi).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"roi must be a 2-D mask, got shape {mask.shape}")
    if not mask.any():
        raise ValueError("roi mask selects no pixel")
    if mask.shape != (height, width):
        img = Image.fromarray(mask.astype(np.uint8) * 255, "L")
        mask = np.asarray(img.resize((width, height), Image.Resampling.NEAREST)) > 127
        if not mask.any():
            raise ValueError(f"roi mask selects no pixel {where or f'at {height} x {width}'}")
    return mask


@functools.cache
def _luma_weights(device: torch.device) -> torch.Tensor:
    """The weights on ``device``, made once: a host-to-device copy per batch is a CUDA sync."""
    return torch.tensor(LUMA, dtype=torch.float32, device=device).view(1, 3, 1, 1)


def frame_quality(
    frames: torch.Tensor, roi: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``N x 3 x H x W`` frames -> (float32 brightness ``(N,)``, bool usable ``(N,)``).

    ``roi`` is a boolean ``H x W`` tensor on the frames' device (see :func:`roi_mask`);
    ``None`` counts every pixel. Results stay on the frames' device.
    """
    n = frames.shape[0]
    weights = _luma_weights(frames.device)
    luma = (frames.float() * weights).sum(dim=1) / 255.0  # N x H x W
    if roi is None:
        luma = luma.reshape(n, -1)
        brightness = luma.mean(dim=1)
        usable = luma.std(dim=1, unbiased=False) >= USABLE_MIN_STD
        return brightness, usable
    # masked means rather than luma[:, roi]: boolean indexing would sync a CUDA device
    inside = roi.to(luma.dtype)
    count = inside.sum()
    brightness = (luma * inside).sum(dim=(1, 2)) / count
    spread = ((luma - brightness.view(n, 1, 1)) * inside).square().sum(dim=(1, 2)) / count
    usable = spread.sqrt() >= USABLE_MIN_STD
    return brightness, usable
