"""Drawing primitives shared by the synthetic scene painters, and the exact label rule.

Everything here works on numpy arrays only: smooth value noise and fractal noise
(:func:`value_noise`, :func:`fbm`), pixel boxes clipped to the image (:func:`bounding_box`,
:func:`pixel_grid`), planar colour helpers (:func:`tint`, :func:`box_blur`) and the
:class:`Canvas` every layer is composited onto. The canvas holds the label rule: a layer
labels the pixels where its opacity reaches :data:`OPAQUE_THRESHOLD` (0.5), or
:data:`GAS_THRESHOLD` (0.35) for the translucent gas plume, and leaves the others to what
lies behind it.
"""

from __future__ import annotations

import numpy as np

from plumenet.classes import LABEL_CLASSES

#: A layer labels a pixel when its opacity reaches this value (all but gas).
OPAQUE_THRESHOLD = 0.5
#: The translucent gas plume labels a pixel when its opacity reaches this value.
GAS_THRESHOLD = 0.35

#: Index of each label class name in the uint8 label mask.
LABEL_INDEX = {name: index for index, name in enumerate(LABEL_CLASSES)}


def _interp_weights(
    n: int, scale_px: float, offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell index, next index and smoothstep weight for sampling a coarse grid per pixel."""
    t = (np.arange(n, dtype=np.float32) + 0.5) / np.float32(scale_px) + np.float32(offset)
    i0 = t.astype(np.int64)
    f = t - i0
    s = f * f * (3.0 - 2.0 * f)
    return i0, i0 + 1, s


def value_noise(
    rng: np.random.Generator, h: int, w: int, scale_y: float, scale_x: float
) -> np.ndarray:
    """Smooth value noise in [0, 1] with features ~``scale`` pixels (separable interpolation)."""
    y0, y1, sy = _interp_weights(h, max(scale_y, 1.0), rng.random())
    x0, x1, sx = _interp_weights(w, max(scale_x, 1.0), rng.random())
    grid = rng.random((int(y1[-1]) + 1, int(x1[-1]) + 1), dtype=np.float32)
    rows = grid[:, x0] * (1.0 - sx) + grid[:, x1] * sx
    return rows[y0] * (1.0 - sy)[:, None] + rows[y1] * sy[:, None]


def fbm(
    rng: np.random.Generator,
    h: int,
    w: int,
    scale: float,
    octaves: int = 3,
    *,
    stretch: float = 1.0,
    billow: bool = False,
) -> np.ndarray:
    """Fractal noise in ~[0, 1]; ``stretch`` > 1 elongates features horizontally."""
    total = np.zeros((h, w), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for octave in range(octaves):
        s = scale / (2.0**octave)
        n = value_noise(rng, h, w, s, s * stretch)
        if billow:
            n = 1.0 - np.abs(2.0 * n - 1.0)
        total += amp * n
        norm += amp
        amp *= 0.5
    total /= norm
    # value noise is concentrated around 0.5; stretch the contrast back towards [0, 1]
    return np.clip((total - 0.5) * 1.8 + 0.5, 0.0, 1.0)


def bounding_box(
    y0: float, y1: float, x0: float, x1: float, h: int, w: int
) -> tuple[slice, slice] | None:
    """Integer bounding box clipped to the image, or None when empty."""
    ys, ye = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, h)
    xs, xe = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, w)
    if ye <= ys or xe <= xs:
        return None
    return slice(ys, ye), slice(xs, xe)


def pixel_grid(box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (Y column vector, X row vector) of a box."""
    ys, xs = box
    y = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] + 0.5
    x = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] + 0.5
    return y, x


def tint(base: tuple[float, float, float] | np.ndarray, shade: np.ndarray) -> np.ndarray:
    """Planar colour (3 x H x W) of an RGB ``base`` modulated by a 2-D ``shade``."""
    return np.asarray(base, dtype=np.float32)[:, None, None] * shade


class Canvas:
    """Planar RGB (3 x H x W, float 0-255) and label planes; over-compositing and label rule.

    Planar colour keeps per-pixel alpha broadcasting on the fast (leading) axis.
    """

    def __init__(self, rgb: np.ndarray, label: np.ndarray) -> None:
        self.rgb = rgb
        self.label = label

    def over(
        self,
        box: tuple[slice, slice],
        alpha: np.ndarray,
        color: np.ndarray,
        cls: str,
        threshold: float = OPAQUE_THRESHOLD,
    ) -> None:
        region = self.rgb[(slice(None), *box)]
        c = color[:, None, None] if color.ndim == 1 else color
        region *= 1.0 - alpha
        region += alpha * c
        self.label[box][alpha >= threshold] = LABEL_INDEX[cls]


def box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Box blur (radius r) by cumulative sums along each axis."""
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r + 1, r)
        c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float32)
        n = a.shape[axis]
        hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        a = (hi - lo) / (2 * r + 1)
    return a
