"""Tiled inference for frames much larger than the model input.

A 4000 x 3000 frame squeezed to 518 x 518 shrinks a 40-pixel vent plume to about five
pixels, less than one 14-pixel patch, and the model cannot see it. Tiling runs the
model on overlapping ``tile x tile`` windows (each resized to the model input), and
blends the windows' class probabilities with a smooth weight that is highest in a
tile's centre and never zero (so every pixel has a defined value, image borders
included).

- :func:`tile_windows` lists the top-left corners; the last tile of each row and column
  is flush with the image edge, so the frame is covered completely.
- :func:`blend_window` is the separable weight (a raised Hann window with a floor).
- :func:`predict_tiled` returns a :class:`TiledPrediction`: blended probabilities at a
  chosen output scale, the class fractions from the argmax at full resolution (the
  blended probabilities are upsampled bilinearly strip by strip, so a full-size array is
  never held), and the frame's brightness and usability by the predictor's rule
  (:func:`~plumenet.inference.quality.frame_quality`) inside the ROI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from plumenet.inference.predictor import Predictor
from plumenet.inference.quality import frame_quality, roi_mask

__all__ = ["TiledPrediction", "blend_window", "predict_tiled", "tile_windows"]

#: Lowest weight of :func:`blend_window` (relative to its peak of 1).
WINDOW_FLOOR: float = 0.05


@dataclass(frozen=True)
class TiledPrediction:
    """What :func:`predict_tiled` returns for one large frame."""

    probability: np.ndarray  # float32 (C, round(H*scale), round(W*scale)), sums to 1
    fraction: np.ndarray  # float32 (C,), argmax at full resolution, whole frame
    brightness: float  # mean Rec. 601 luminance (0-1) inside the ROI
    usable: bool  # luminance std inside the ROI >= USABLE_MIN_STD


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_windows(height: int, width: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(y0, x0)`` of ``tile``-sized windows covering the image.

    Windows step by ``stride``; the last one in each direction is flush with the edge.
    A side shorter than ``tile`` gets a single window starting at 0 (clipped to the image).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if not 0 < stride <= tile:
        raise ValueError(f"stride must be in 1..tile ({tile}) so tiles leave no gap, got {stride}")
    return [(y, x) for y in _starts(height, tile, stride) for x in _starts(width, tile, stride)]


def _window_1d(n: int) -> np.ndarray:
    if n <= 0:
        raise ValueError(f"window length must be positive, got {n}")
    i = (np.arange(n, dtype=np.float64) + 0.5) / n
    return (WINDOW_FLOOR + (1.0 - WINDOW_FLOOR) * np.sin(np.pi * i) ** 2).astype(np.float32)


def blend_window(tile: int | tuple[int, int]) -> np.ndarray:
    """2-D blending weight for a tile: raised Hann, peak ~1 in the centre, >= 0.05 everywhere."""
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    return np.outer(_window_1d(int(th)), _window_1d(int(tw)))


def _resize_to(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return np.ascontiguousarray(img)
    pil = Image.fromarray(img)
    return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None))


def _argmax0(x: torch.Tensor) -> torch.Tensor:
    """``x.argmax(0)`` for a small first axis (ties -> lowest index), as C passes.

    Much faster than a strided reduction over the first axis of a large C x H x W array.
    """
    best = x[0].clone()
    idx = torch.zeros(x.shape[1:], dtype=torch.long)
    for k in range(1, x.shape[0]):
        better = x[k] > best
        best = torch.where(better, x[k], best)
        idx.masked_fill_(better, k)
    return idx


def _argmax_counts(
    prob: torch.Tensor,
    height: int,
    width: int,
    rows: int = 256,
    mask: torch.Tensor | None = None,
) -> np.ndarray:
    """Class counts of the argmax of ``prob`` (C x h x w) upsampled bilinearly to H x W.

    Equivalent to ``F.interpolate(..., align_corners=False).argmax(0)`` at full size, but
    computed in strips of ``rows`` output rows to bound memory. With a boolean ``mask``
    (H x W), only the pixels inside it count.
    """
    c, h, w = prob.shape
    if (h, w) == (height, width):
        labels = _argmax0(prob)
        labels = labels[mask] if mask is not None else labels.reshape(-1)
        return torch.bincount(labels, minlength=c).numpy().astype(np.float64)

    def axis(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
        src = src.clamp(min=0.0)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        frac = (src - i0.double()).float()
        return i0, i1, frac

    y0, y1, fy = axis(height, h)
    x0, x1, fx = axis(width, w)
    counts = torch.zeros(c, dtype=torch.float64)
    for start in range(0, height, rows):
        sl = slice(start, min(start + rows, height))
        wy = fy[sl].view(1, -1, 1)
        py = prob[:, y0[sl], :] * (1 - wy) + prob[:, y1[sl], :] * wy  # C x rows x w
        strip = py[:, :, x0] * (1 - fx) + py[:, :, x1] * fx  # C x rows x W
        labels = _argmax0(strip)
        labels = labels[mask[sl]] if mask is not None else labels.reshape(-1)
        counts += torch.bincount(labels, minlength=c).double()
    return counts.numpy()


def predict_tiled(
    predictor: Predictor,
    image: np.ndarray,
    tile: int,
    stride: int,
    *,
    scale: float | None = None,
    roi: np.ndarray | None = None,
) -> TiledPrediction:
    """Run ``predictor`` over overlapping tiles of a large ``H x W x 3`` uint8 image.

    Each ``tile x tile`` window (clipped to the image) is resized to the model input; its
    grid logits are upsampled bilinearly to the window's size at the output ``scale``,
    turned into probabilities and accumulated with :func:`blend_window` weights.

    Returns a :class:`TiledPrediction`: float32 ``C x round(H*scale) x round(W*scale)``
    blended probabilities (summing to 1 per pixel), float32 ``(C,)`` class fractions from
    the argmax at full resolution, and the frame's brightness and usability by
    :func:`~plumenet.inference.quality.frame_quality`, all three inside ``roi`` (a 2-D
    mask at any resolution, resized nearest to ``H x W``; ``None``: every pixel), as the
    predictor counts them. ``scale``
    defaults to 1 for images up to 4 megapixels and to about 2 megapixels of output above
    that.
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8, got {arr.shape} {arr.dtype}")
    height, width = arr.shape[:2]
    mask = None if roi is None else torch.from_numpy(roi_mask(roi, height, width))
    if scale is None:
        scale = 1.0 if height * width <= 4_000_000 else math.sqrt(2_000_000 / (height * width))
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    oh, ow = max(1, round(height * scale)), max(1, round(width * scale))
    windows = tile_windows(height, width, tile, stride)
    size = predictor.input_size
    c = predictor.num_classes
    acc = torch.zeros(c, oh, ow, dtype=torch.float32)
    wsum = torch.zeros(oh, ow, dtype=torch.float32)
    batch = max(1, predictor.batch_size)
    for start in range(0, len(windows), batch):
        group = windows[start : start + batch]
        crops = np.stack([_resize_to(arr[y : y + tile, x : x + tile], size) for y, x in group])
        logits = predictor.grid_logits(crops)
        for (y, x), grid in zip(group, logits, strict=True):
            th, tw = min(tile, height - y), min(tile, width - x)
            oy0, ox0 = round(y * scale), round(x * scale)
            oy1, ox1 = min(oh, round((y + th) * scale)), min(ow, round((x + tw) * scale))
            if oy1 <= oy0 or ox1 <= ox0:
                continue
            up = F.interpolate(
                grid[None], size=(oy1 - oy0, ox1 - ox0), mode="bilinear", align_corners=False
            )[0]
            prob = torch.softmax(up, dim=0)
            weight = torch.from_numpy(blend_window((oy1 - oy0, ox1 - ox0)))
            acc[:, oy0:oy1, ox0:ox1] += prob * weight
            wsum[oy0:oy1, ox0:ox1] += weight
    probability = acc / wsum.clamp(min=1e-12)
    counts = _argmax_counts(probability, height, width, mask=mask)
    total = counts.sum()
    fraction = (counts / total if total > 0 else np.full(c, np.nan)).astype(np.float32)
    pixels = torch.from_numpy(arr if arr.flags.writeable else arr.copy())  # decoded: read-only
    brightness, usable = frame_quality(pixels.permute(2, 0, 1)[None], mask)
    return TiledPrediction(
        probability=probability.numpy().astype(np.float32),
        fraction=fraction,
        brightness=float(brightness[0]),
        usable=bool(usable[0]),
    )
