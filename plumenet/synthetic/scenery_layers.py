"""Painters of the scenery behind and around the volcano: sky, mountain and clouds.

:func:`sky_gradient` gives the starting colour planes, :func:`mountain_layer` the ridge
line, land opacity and land colour of one camera view (cached: every frame of a camera shares
its mountain), and :func:`paint_clouds` composites the far or near cloud layer (cumulus,
stratus and the optional bank in front of the summit) onto a :class:`Canvas`. Clouds are
labelled ``background`` wherever they are opaque enough, so a cloud over the summit hides the
land.
"""

from __future__ import annotations

import functools

import numpy as np

from plumenet.synthetic.canvas import Canvas, bounding_box, fbm, pixel_grid, tint, value_noise
from plumenet.synthetic.spec import Mountain, SceneSpec, vent_position


@functools.lru_cache(maxsize=16)
def mountain_layer(m: Mountain, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge line (W,), land opacity (H,W) and land colour (H,W,3) for one view and size.

    Cached: every frame of a camera shares its mountain. The arrays are read-only.
    """
    rng = np.random.default_rng(m.seed)
    x = (np.arange(w, dtype=np.float32) + 0.5) - m.peak_x * w
    dx = np.abs(x) / h
    slope = np.where(x < 0, m.slope_left, m.slope_right)
    flank = slope * np.maximum(dx - m.crater_width, 0.0) ** m.exponent
    inside = np.clip(1.0 - (dx / max(m.crater_width, 1e-3)) ** 2, 0.0, 1.0)
    crater = m.crater_depth * inside
    rough = (value_noise(rng, 1, w, 1.0, 0.08 * h)[0] - 0.5) + 0.5 * (
        value_noise(rng, 1, w, 1.0, 0.02 * h)[0] - 0.5
    )
    ridge = (m.peak_y + flank + crater + m.roughness * rough * np.minimum(dx * 4, 1.0)) * h
    y = np.arange(h, dtype=np.float32)[:, None] + 0.5
    alpha = np.clip(y - ridge[None, :] + 0.5, 0.0, 1.0)

    tex = fbm(rng, h, w, 0.06 * h, 3)
    gullies = value_noise(rng, h, w, 0.08 * h, 0.006 * h)
    side = np.where(x < 0, 1.08, 0.86)[None, :].astype(np.float32)
    depth = np.clip((y - ridge[None, :]) / (0.5 * h), 0.0, 1.0)
    shade = (0.62 + 0.5 * tex + 0.25 * (gullies - 0.5)) * side * (0.9 + 0.2 * depth)
    color = tint(m.color, shade)

    if m.foreground < 1.0:
        hill = (
            m.foreground
            + 0.04 * np.sin(np.arange(w, dtype=np.float32) / w * 6.0 + m.seed % 7)
            + 0.03 * (value_noise(rng, 1, w, 1.0, 0.05 * h)[0] - 0.5)
        ) * h
        fa = np.clip(y - hill[None, :] + 0.5, 0.0, 1.0)
        ftex = fbm(rng, h, w, 0.03 * h, 3)
        fcolor = tint(m.foreground_color, 0.6 + 0.6 * ftex)
        color = color * (1.0 - fa) + fcolor * fa
        alpha = np.maximum(alpha, fa)
        ridge = np.minimum(ridge, hill)
    for arr in (ridge, alpha, color):
        arr.setflags(write=False)
    return ridge, alpha, color


def sky_gradient(spec: SceneSpec) -> np.ndarray:
    """Colour planes (3 x H x W, float) of the clear sky: top colour fading to the horizon."""
    h, w = spec.height, spec.width
    t = (np.arange(h, dtype=np.float32) / max(h - 1, 1))[:, None] ** 0.8
    top = np.asarray(spec.sky_top, dtype=np.float32)
    hor = np.asarray(spec.sky_horizon, dtype=np.float32)
    col = top[:, None, None] * (1.0 - t) + hor[:, None, None] * t  # 3 x H x 1
    return np.broadcast_to(col, (3, h, w)).copy()


def _cumulus(
    canvas: Canvas,
    rng: np.random.Generator,
    cx: float,
    base: float,
    half_w: float,
    top_h: float,
    opacity: float,
    grey: float,
) -> None:
    """Flat-bottomed billowy cloud (background): bright tops, grey base."""
    h, w = canvas.label.shape
    box = bounding_box(base - top_h * 1.4, base + 2, cx - half_w * 1.4, cx + half_w * 1.4, h, w)
    if box is None:
        return
    y, x = pixel_grid(box)
    bh, bw = y.shape[0], x.shape[1]
    lumps = fbm(rng, bh, bw, max(top_h * 0.45, 2.0), 3, billow=True)
    up = np.clip((base - y) / top_h, 0.0, None)
    d = ((x - cx) / half_w) ** 2 + up**2
    edge = 1.0 + 0.55 * (lumps - 0.5)
    a = np.clip((edge - d) * min(half_w, top_h) * 0.5, 0.0, 1.0)
    a *= np.clip(base - y + 0.5, 0.0, 1.0)  # flat bottom
    a *= opacity
    shade = (0.72 + 0.28 * np.clip(up * 1.3, 0, 1)) * (0.88 + 0.2 * lumps)
    color = tint((grey, grey, grey * 1.02), np.clip(shade, 0, 1.08))
    canvas.over(box, a, color, "background")


def _stratus(
    canvas: Canvas, rng: np.random.Generator, yc: float, thick: float, opacity: float, grey: float
) -> None:
    """Horizontal layer of cloud (background), smooth and elongated."""
    h, w = canvas.label.shape
    box = bounding_box(yc - thick * 1.6, yc + thick * 1.6, 0, w, h, w)
    if box is None:
        return
    y, _x = pixel_grid(box)
    bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
    n = fbm(rng, bh, bw, thick * 1.5, 3, stretch=5.0)
    edge = thick * (0.6 + 0.9 * n)
    a = np.clip(edge - np.abs(y - yc), 0.0, 1.0) * opacity * (0.85 + 0.15 * n)
    color = grey * (0.85 + 0.2 * n)
    canvas.over(box, a, color, "background")


def paint_clouds(canvas: Canvas, spec: SceneSpec, rng: np.random.Generator, near: bool) -> None:
    """Composite the far (``near=False``) or near cloud layer; all of it labels background."""
    h, w = spec.height, spec.width
    cover = spec.cloud_cover
    grey = 240.0 if cover < 0.6 else 215.0 - 40.0 * (cover - 0.6)
    n_cu = int(rng.poisson(cover * (2.0 if near else 5.0)))
    for _ in range(n_cu):
        half_w = h * rng.uniform(0.06, 0.22)
        _cumulus(
            canvas,
            rng,
            cx=rng.uniform(-0.1, 1.1) * w,
            base=h * rng.uniform(0.12, 0.75 if near else 0.6),
            half_w=half_w,
            top_h=half_w * rng.uniform(0.5, 1.0),
            opacity=rng.uniform(0.85, 1.0),
            grey=grey * rng.uniform(0.93, 1.02),
        )
    if not near and cover > 0.45:
        for _ in range(1 + int(cover > 0.8)):
            _stratus(
                canvas,
                rng,
                yc=h * rng.uniform(0.05, 0.45),
                thick=h * rng.uniform(0.02, 0.08) * cover,
                opacity=rng.uniform(0.6, 1.0),
                grey=grey * rng.uniform(0.85, 1.0),
            )
    if near and spec.summit_cloud:
        _, vy = vent_position(spec)
        _stratus(
            canvas,
            rng,
            yc=vy + h * rng.uniform(-0.04, 0.04),
            thick=h * rng.uniform(0.04, 0.1),
            opacity=rng.uniform(0.85, 1.0),
            grey=grey * rng.uniform(0.85, 0.97),
        )
