"""Synthetic volcano-webcam scenes with exact 8-class labels (tests, demo model, benchmarks).

A scene is described by a frozen :class:`SceneSpec` and drawn by :func:`render_scene` as a
stack of layers, back to front: sky, far clouds, mountain (and foreground hill), gas plume,
ash cloud, eruption column, pyroclastic flow, lava, near clouds; then night darkening,
lava glow and sensor noise. Geometric lengths in the spec are in units of the image height
(so a scene looks the same at any resolution); horizontal positions are fractions of the
width.

Label rule (exact, by construction): each layer has a per-pixel opacity ``alpha``; a pixel's
label is that of the topmost layer whose ``alpha`` reaches the layer's threshold —
:data:`OPAQUE_THRESHOLD` (0.5) for everything but gas, :data:`GAS_THRESHOLD` (0.35) for the
translucent gas plume — and otherwise what lies behind it. Clouds are ``background`` wherever
they are opaque enough, so a cloud over the summit hides the land (obstruction). Lava glow
and sensor noise change colours only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np

from plumenet.classes import LABEL_CLASSES, merge_labels

logger = logging.getLogger(__name__)

#: A layer labels a pixel when its opacity reaches this value (all but gas).
OPAQUE_THRESHOLD = 0.5
#: The translucent gas plume labels a pixel when its opacity reaches this value.
GAS_THRESHOLD = 0.35

_LABEL = {name: index for index, name in enumerate(LABEL_CLASSES)}

#: Names accepted in ``activity``: label classes and the model classes that group them.
ACTIVITY_NAMES: tuple[str, ...] = (
    "eruption_column",
    "eruption_cloud",
    "pyroclastic_flow",
    "low_temperature_gas",
    "high_temperature_gas",
    "lava",
    "lava_flow",
    "lava_fountain",
    "ash_emissions",
    "non_ash_emissions",
)

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Mountain:
    """The volcano seen by one camera view: fixed for a ``view_seed``."""

    peak_x: float  # summit position, fraction of the width
    peak_y: float  # summit (crater rim) height, fraction of the height from the top
    slope_left: float  # drop per unit of horizontal distance (both in image heights)
    slope_right: float
    exponent: float  # > 1 gives concave flanks
    crater_width: float  # half-width of the crater, image heights
    crater_depth: float  # image heights
    roughness: float  # amplitude of ridge noise, image heights
    color: RGB
    foreground: float  # top of the foreground hill, fraction of height from top (1 = none)
    foreground_color: RGB
    seed: int


@dataclass(frozen=True)
class Column:
    """Vertical convective eruption column rising from the vent (label eruption_column)."""

    height: float  # above the vent, image heights
    width: float  # full width at the vent, image heights
    darkness: float  # 0 light grey .. 1 near black
    lean: float  # horizontal drift per unit height (wind)


@dataclass(frozen=True)
class AshCloud:
    """Brownish-grey cloud drifting downwind from the column top or the vent (eruption_cloud)."""

    length: float  # downwind extent, image heights
    thickness: float  # half-thickness at the source, image heights
    rise: float  # how much the centreline climbs, image heights
    from_column: bool  # starts at the column top (else at the vent)


@dataclass(frozen=True)
class PyroclasticFlow:
    """Billowy ash avalanche down one flank (label pyroclastic_flow)."""

    side: int  # -1 left flank, +1 right flank
    length: float  # horizontal run from the vent, image heights
    thickness: float  # image heights


@dataclass(frozen=True)
class GasPlume:
    """Translucent white wispy plume from the vent (low/high_temperature_gas)."""

    temperature: str  # "low" or "high"
    rise: float  # image heights
    length: float  # downwind extent, image heights
    width: float  # half-width at the source, image heights
    opacity: float  # peak opacity 0-1


@dataclass(frozen=True)
class Lava:
    """Incandescent lava: a flow down the flank or a fountain at the vent (label lava)."""

    kind: str  # "flow" or "fountain"
    side: int  # flow: -1 left, +1 right
    length: float  # flow length / fountain height, image heights
    width: float  # image heights


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to draw one frame; ``render_scene`` is a pure function of it."""

    width: int
    height: int
    night: bool
    sky_top: RGB
    sky_horizon: RGB
    cloud_cover: float  # 0 clear .. 1 overcast
    haze: float  # 0-1 blend of the mountain towards the horizon colour
    wind: int  # -1 blows left, +1 blows right
    mountain: Mountain
    column: Column | None = None
    ash_cloud: AshCloud | None = None
    pyroclastic_flow: PyroclasticFlow | None = None
    gas: GasPlume | None = None
    lava: Lava | None = None
    summit_cloud: bool = False  # a cloud bank in front of the summit
    fog: float = 0.0  # 0-1 opacity of a cloud layer over the whole view (>= 0.5 hides it)
    brightness: float = 1.0  # overall exposure (night frames ~0.1-0.25)
    noise: float = 3.0  # sensor noise sigma, grey levels
    seed: int = 0  # texture and cloud placement


# --------------------------------------------------------------------------- noise


def _interp_weights(
    n: int, scale_px: float, offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell index, next index and smoothstep weight for sampling a coarse grid per pixel."""
    t = (np.arange(n, dtype=np.float32) + 0.5) / np.float32(scale_px) + np.float32(offset)
    i0 = t.astype(np.int64)
    f = t - i0
    s = f * f * (3.0 - 2.0 * f)
    return i0, i0 + 1, s


def _noise(rng: np.random.Generator, h: int, w: int, scale_y: float, scale_x: float) -> np.ndarray:
    """Smooth value noise in [0, 1] with features ~``scale`` pixels (separable interpolation)."""
    y0, y1, sy = _interp_weights(h, max(scale_y, 1.0), rng.random())
    x0, x1, sx = _interp_weights(w, max(scale_x, 1.0), rng.random())
    grid = rng.random((int(y1[-1]) + 1, int(x1[-1]) + 1), dtype=np.float32)
    rows = grid[:, x0] * (1.0 - sx) + grid[:, x1] * sx
    return rows[y0] * (1.0 - sy)[:, None] + rows[y1] * sy[:, None]


def _fbm(
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
        n = _noise(rng, h, w, s, s * stretch)
        if billow:
            n = 1.0 - np.abs(2.0 * n - 1.0)
        total += amp * n
        norm += amp
        amp *= 0.5
    total /= norm
    # value noise is concentrated around 0.5; stretch the contrast back towards [0, 1]
    return np.clip((total - 0.5) * 1.8 + 0.5, 0.0, 1.0)


def _box(y0: float, y1: float, x0: float, x1: float, h: int, w: int) -> tuple[slice, slice] | None:
    """Integer bounding box clipped to the image, or None when empty."""
    ys, ye = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, h)
    xs, xe = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, w)
    if ye <= ys or xe <= xs:
        return None
    return slice(ys, ye), slice(xs, xe)


def _grid(box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (Y column vector, X row vector) of a box."""
    ys, xs = box
    y = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] + 0.5
    x = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] + 0.5
    return y, x


def _tint(base: tuple[float, float, float] | np.ndarray, shade: np.ndarray) -> np.ndarray:
    """Planar colour (3 x H x W) of an RGB ``base`` modulated by a 2-D ``shade``."""
    return np.asarray(base, dtype=np.float32)[:, None, None] * shade


class _Canvas:
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
        self.label[box][alpha >= threshold] = _LABEL[cls]


# --------------------------------------------------------------------------- layers


@functools.lru_cache(maxsize=16)
def _mountain_layer(m: Mountain, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    rough = (_noise(rng, 1, w, 1.0, 0.08 * h)[0] - 0.5) + 0.5 * (
        _noise(rng, 1, w, 1.0, 0.02 * h)[0] - 0.5
    )
    ridge = (m.peak_y + flank + crater + m.roughness * rough * np.minimum(dx * 4, 1.0)) * h
    y = np.arange(h, dtype=np.float32)[:, None] + 0.5
    alpha = np.clip(y - ridge[None, :] + 0.5, 0.0, 1.0)

    tex = _fbm(rng, h, w, 0.06 * h, 3)
    gullies = _noise(rng, h, w, 0.08 * h, 0.006 * h)
    side = np.where(x < 0, 1.08, 0.86)[None, :].astype(np.float32)
    depth = np.clip((y - ridge[None, :]) / (0.5 * h), 0.0, 1.0)
    shade = (0.62 + 0.5 * tex + 0.25 * (gullies - 0.5)) * side * (0.9 + 0.2 * depth)
    color = _tint(m.color, shade)

    if m.foreground < 1.0:
        hill = (
            m.foreground
            + 0.04 * np.sin(np.arange(w, dtype=np.float32) / w * 6.0 + m.seed % 7)
            + 0.03 * (_noise(rng, 1, w, 1.0, 0.05 * h)[0] - 0.5)
        ) * h
        fa = np.clip(y - hill[None, :] + 0.5, 0.0, 1.0)
        ftex = _fbm(rng, h, w, 0.03 * h, 3)
        fcolor = _tint(m.foreground_color, 0.6 + 0.6 * ftex)
        color = color * (1.0 - fa) + fcolor * fa
        alpha = np.maximum(alpha, fa)
        ridge = np.minimum(ridge, hill)
    for arr in (ridge, alpha, color):
        arr.setflags(write=False)
    return ridge, alpha, color


def vent_position(spec: SceneSpec) -> tuple[float, float]:
    """(x, y) pixel position of the vent: the crater floor's middle."""
    m = spec.mountain
    x = m.peak_x * spec.width
    y = (m.peak_y + 0.6 * m.crater_depth) * spec.height
    return x, y


def _sky(spec: SceneSpec) -> np.ndarray:
    h, w = spec.height, spec.width
    t = (np.arange(h, dtype=np.float32) / max(h - 1, 1))[:, None] ** 0.8
    top = np.asarray(spec.sky_top, dtype=np.float32)
    hor = np.asarray(spec.sky_horizon, dtype=np.float32)
    col = top[:, None, None] * (1.0 - t) + hor[:, None, None] * t  # 3 x H x 1
    return np.broadcast_to(col, (3, h, w)).copy()


def _cumulus(
    canvas: _Canvas,
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
    box = _box(base - top_h * 1.4, base + 2, cx - half_w * 1.4, cx + half_w * 1.4, h, w)
    if box is None:
        return
    y, x = _grid(box)
    bh, bw = y.shape[0], x.shape[1]
    lumps = _fbm(rng, bh, bw, max(top_h * 0.45, 2.0), 3, billow=True)
    up = np.clip((base - y) / top_h, 0.0, None)
    d = ((x - cx) / half_w) ** 2 + up**2
    edge = 1.0 + 0.55 * (lumps - 0.5)
    a = np.clip((edge - d) * min(half_w, top_h) * 0.5, 0.0, 1.0)
    a *= np.clip(base - y + 0.5, 0.0, 1.0)  # flat bottom
    a *= opacity
    shade = (0.72 + 0.28 * np.clip(up * 1.3, 0, 1)) * (0.88 + 0.2 * lumps)
    color = _tint((grey, grey, grey * 1.02), np.clip(shade, 0, 1.08))
    canvas.over(box, a, color, "background")


def _stratus(
    canvas: _Canvas, rng: np.random.Generator, yc: float, thick: float, opacity: float, grey: float
) -> None:
    """Horizontal layer of cloud (background), smooth and elongated."""
    h, w = canvas.label.shape
    box = _box(yc - thick * 1.6, yc + thick * 1.6, 0, w, h, w)
    if box is None:
        return
    y, _x = _grid(box)
    bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
    n = _fbm(rng, bh, bw, thick * 1.5, 3, stretch=5.0)
    edge = thick * (0.6 + 0.9 * n)
    a = np.clip(edge - np.abs(y - yc), 0.0, 1.0) * opacity * (0.85 + 0.15 * n)
    color = grey * (0.85 + 0.2 * n)
    canvas.over(box, a, color, "background")


def _clouds(canvas: _Canvas, spec: SceneSpec, rng: np.random.Generator, near: bool) -> None:
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


def _bent_plume_geometry(
    x: np.ndarray,
    source_x: float,
    source_y: float,
    wind: int,
    rise: float,
    length: float,
    th0: float,
    growth: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centreline y, half-thickness and perpendicular scale of a plume bent by the wind."""
    dx = (x - source_x) * wind
    dpos = np.maximum(dx, 0.0)
    lr = max(length * 0.25, 1.0)
    yc = source_y - rise * (1.0 - np.exp(-dpos / lr))
    slope = rise / lr * np.exp(-dpos / lr)
    th = th0 + growth * dpos
    # rounded ends: upwind cap and downwind taper
    up = np.where(dx < 0, np.sqrt(np.clip(1.0 - (dx / th0) ** 2, 0.0, 1.0)), 1.0)
    tail = np.clip((length - dpos) / (0.25 * length), 0.0, 1.0)
    th = th * up * np.sqrt(tail)
    perp = np.sqrt(1.0 + slope**2)
    return yc, th, perp


def _gas(canvas: _Canvas, spec: SceneSpec, rng: np.random.Generator, vx: float, vy: float) -> None:
    g = spec.gas
    assert g is not None
    h, w = spec.height, spec.width
    th0, length, rise = g.width * h, g.length * h, g.rise * h
    growth = 0.35
    maxth = th0 + growth * length
    x_lo, x_hi = (vx - th0, vx + length) if spec.wind > 0 else (vx - length, vx + th0)
    box = _box(vy - rise - maxth * 1.5, vy + 2, x_lo, x_hi, h, w)
    if box is None:
        return
    y, x = _grid(box)
    yc, th, perp = _bent_plume_geometry(x, vx, vy, spec.wind, rise, length, th0, growth)
    bh, bw = y.shape[0], x.shape[1]
    wisps = _fbm(rng, bh, bw, max(th0 * 0.8, 2.0), 3, stretch=3.0)
    dist = np.abs(y - yc) * perp / np.maximum(th, 1e-3)
    prof = np.exp(-2.2 * dist**2)
    a = g.opacity * prof * np.clip(0.35 + 1.0 * wisps, 0.0, 1.2)
    a = np.clip(a, 0.0, 1.0) * np.clip(vy - y + 2.0, 0.0, 1.0)
    base = np.array(
        [242.0, 242.0, 240.0] if g.temperature == "low" else [236, 240, 248], np.float32
    )
    color = _tint(base, 0.9 + 0.12 * wisps)
    cls = "low_temperature_gas" if g.temperature == "low" else "high_temperature_gas"
    canvas.over(box, a, color, cls, GAS_THRESHOLD)


def _column_top(spec: SceneSpec, vx: float, vy: float) -> tuple[float, float]:
    c = spec.column
    assert c is not None
    hh = c.height * spec.height
    return vx + c.lean * hh, vy - hh


def _ash(canvas: _Canvas, spec: SceneSpec, rng: np.random.Generator, vx: float, vy: float) -> None:
    a_ = spec.ash_cloud
    assert a_ is not None
    h, w = spec.height, spec.width
    if a_.from_column and spec.column is not None:
        sx, sy = _column_top(spec, vx, vy)
        sy += 0.15 * spec.column.width * h
    else:
        sx, sy = vx, vy
    th0, length, rise = a_.thickness * h, a_.length * h, a_.rise * h
    growth = 0.18
    maxth = th0 + growth * length
    x_lo, x_hi = (sx - th0, sx + length) if spec.wind > 0 else (sx - length, sx + th0)
    box = _box(sy - rise - maxth * 1.4, sy + maxth * 1.4, x_lo, x_hi, h, w)
    if box is None:
        return
    y, x = _grid(box)
    yc, th, perp = _bent_plume_geometry(x, sx, sy, spec.wind, rise, length, th0, growth)
    bh, bw = y.shape[0], x.shape[1]
    edge = _fbm(rng, bh, bw, max(th0 * 0.7, 2.0), 2, stretch=2.0)
    smooth = _noise(rng, bh, bw, max(th0 * 1.5, 2.0), max(th0 * 3.0, 2.0))
    lim = th * (0.85 + 0.4 * (edge - 0.5))
    d = np.abs(y - yc) * perp
    a = np.clip(lim - d + 0.5, 0.0, 1.0)
    vert = np.clip((y - (yc - th)) / np.maximum(2 * th, 1.0), 0.0, 1.0)
    shade = (1.05 - 0.2 * vert) * (0.88 + 0.22 * smooth)
    color = _tint((142.0, 124.0, 104.0), shade)
    canvas.over(box, a, color, "eruption_cloud")


def _column(
    canvas: _Canvas, spec: SceneSpec, rng: np.random.Generator, vx: float, vy: float
) -> None:
    c = spec.column
    assert c is not None
    h, w = spec.height, spec.width
    height = c.height * h
    hw0 = 0.5 * c.width * h
    hw_top = hw0 * 2.2
    tx, ty = _column_top(spec, vx, vy)
    box = _box(
        ty - hw_top * 1.5,
        vy + 1,
        min(vx, tx) - hw_top * 1.4,
        max(vx, tx) + hw_top * 1.4,
        h,
        w,
    )
    if box is None:
        return
    y, x = _grid(box)
    bh, bw = y.shape[0], x.shape[1]
    above = np.clip(vy - y, 0.0, None)
    frac = np.clip(above / max(height, 1.0), 0.0, 1.0)
    hw = hw0 * (1.0 + 1.2 * frac)
    xc = vx + c.lean * above
    u = (x - xc) / hw
    cap = np.clip((ty + hw_top * 0.8 - y) / (hw_top * 0.8), 0.0, None)
    d = u**2 + cap**2
    lumps = _fbm(rng, bh, bw, max(hw0 * 0.7, 2.0), 3, billow=True)
    edge = (1.0 + 0.5 * (lumps - 0.5)) ** 2
    a = np.clip((edge - d) * hw * 0.5, 0.0, 1.0) * np.clip(vy - y + 0.5, 0.0, 1.0)
    tex = _fbm(rng, bh, bw, max(hw0 * 0.45, 2.0), 3, billow=True)
    lit = np.clip(-u * 0.5 + 0.5, 0.0, 1.0)  # lit from the left
    shade = 0.45 + 0.9 * tex * (0.6 + 0.6 * lit) + 0.15 * (lumps - 0.5)
    grey = 125.0 - 85.0 * c.darkness
    color = _tint((grey, grey * 0.98, grey * 0.96), np.clip(shade, 0.2, 1.9))
    canvas.over(box, a, color, "eruption_column")


def _pyroclastic(
    canvas: _Canvas,
    spec: SceneSpec,
    rng: np.random.Generator,
    ridge: np.ndarray,
    vx: float,
    vy: float,
) -> None:
    p = spec.pyroclastic_flow
    assert p is not None
    h, w = spec.height, spec.width
    run, thick = p.length * h, p.thickness * h
    x_lo, x_hi = (vx, vx + run) if p.side > 0 else (vx - run, vx)
    box = _box(vy - 3 * thick, h, x_lo - thick, x_hi + thick, h, w)
    if box is None:
        return
    y, x = _grid(box)
    bh, bw = y.shape[0], x.shape[1]
    surf = ridge[box[1]][None, :]
    dpos = np.clip((x - vx) * p.side, 0.0, None)
    prog = np.clip(dpos / max(run, 1.0), 0.0, 1.0)
    # body hugs the flank: above the surface by ``th``, below it by a bit less
    th = thick * (0.6 + 0.8 * prog) * np.sqrt(np.clip((1.0 - prog) / 0.15, 0.0, 1.0))
    lumps = _fbm(rng, bh, bw, max(thick * 0.5, 2.0), 3, billow=True)
    lim = th * (0.8 + 0.5 * (lumps - 0.5))
    rel = surf - y  # > 0 above the ground
    d = np.where(rel > 0, rel, -rel * 1.6)
    a = np.clip(lim - d + 0.5, 0.0, 1.0) * np.clip((x - vx) * p.side + thick * 0.5, 0.0, 1.0)
    shade = 0.75 + 0.45 * lumps
    color = _tint((160.0, 146.0, 128.0), shade)
    canvas.over(box, a, color, "pyroclastic_flow")


def _lava_alpha(
    spec: SceneSpec, rng: np.random.Generator, ridge: np.ndarray, vx: float, vy: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Box, opacity and core-ness (1 at the hottest centre) of the lava layer."""
    lv = spec.lava
    assert lv is not None
    h, w = spec.height, spec.width
    width = max(lv.width * h, 1.5)
    length = lv.length * h
    if lv.kind == "fountain":
        box = _box(vy - length - width, vy + width, vx - length, vx + length, h, w)
        if box is None:
            return None
        y, x = _grid(box)
        up = np.clip(vy - y, 0.0, None)
        hw = width * 0.5 + 0.45 * up
        spray = _fbm(rng, y.shape[0], x.shape[1], max(width * 0.6, 2.0), 2)
        top = length * (0.75 + 0.5 * spray)
        core = np.clip(1.0 - np.abs(x - vx) / hw, 0.0, 1.0) * np.clip(1.0 - up / top, 0.0, 1.0)
        a = np.clip((core - 0.12) * 6.0 + 0.5 * (spray - 0.5), 0.0, 1.0)
        a *= np.clip(vy + width * 0.3 - y, 0.0, 1.0)
        return box, a, core
    drift = 0.5 * lv.side
    box = _box(vy - 2, vy + length + 2, vx - length, vx + length, h, w)
    if box is None:
        return None
    y, x = _grid(box)
    down = np.clip(y - vy, 0.0, None)
    wig = _noise(rng, y.shape[0], 1, max(length * 0.25, 2.0), 1.0)
    xc = vx + drift * down + (wig - 0.5) * width * 4.0
    hw = width * (1.0 - 0.5 * np.clip(down / max(length, 1.0), 0.0, 1.0))
    core = np.clip(1.0 - np.abs(x - xc) / hw, 0.0, 1.0)
    a = np.clip((np.abs(x - xc) - hw) * -1.0 + 0.5, 0.0, 1.0)
    a *= np.clip(vy + length - y, 0.0, 1.0) * np.clip(y - vy + 0.5, 0.0, 1.0)
    a *= np.clip(y - ridge[box[1]][None, :] - 0.5, 0.0, 1.0)  # on the ground only
    return box, a, core


def _lava(
    canvas: _Canvas,
    spec: SceneSpec,
    rng: np.random.Generator,
    ridge: np.ndarray,
    vx: float,
    vy: float,
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    geo = _lava_alpha(spec, rng, ridge, vx, vy)
    if geo is None:
        return None
    box, a, core = geo
    hot = np.array([255.0, 225.0, 110.0], np.float32)
    edge = np.array([235.0, 70.0, 10.0], np.float32)
    k = np.clip(core * 1.4, 0.0, 1.0)
    color = _tint(edge, 1.0 - k) + _tint(hot, k)
    canvas.over(box, a, color, "lava")
    return box, a, color


def _blur(a: np.ndarray, r: int) -> np.ndarray:
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


def render_scene(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``spec``: RGB uint8 (H x W x 3) and its exact label mask uint8 (H x W, 8 classes)."""
    h, w = spec.height, spec.width
    rng = np.random.default_rng(spec.seed)
    canvas = _Canvas(_sky(spec), np.zeros((h, w), dtype=np.uint8))

    _clouds(canvas, spec, rng, near=False)

    ridge, land_a, land_rgb = _mountain_layer(spec.mountain, w, h)
    hor = np.asarray(spec.sky_horizon, dtype=np.float32)
    land_box = (slice(max(int(ridge.min()) - 1, 0), h), slice(0, w))
    land_color = land_rgb[(slice(None), *land_box)] * np.float32(1.0 - spec.haze)
    land_color += hor[:, None, None] * np.float32(spec.haze)
    canvas.over(land_box, land_a[land_box], land_color, "land")

    vx, vy = vent_position(spec)
    if spec.gas is not None:
        _gas(canvas, spec, rng, vx, vy)
    if spec.ash_cloud is not None:
        _ash(canvas, spec, rng, vx, vy)
    if spec.column is not None:
        _column(canvas, spec, rng, vx, vy)
    if spec.pyroclastic_flow is not None:
        _pyroclastic(canvas, spec, rng, ridge, vx, vy)
    lava = _lava(canvas, spec, rng, ridge, vx, vy) if spec.lava is not None else None

    _clouds(canvas, spec, rng, near=True)
    if spec.fog > 0:
        n = _fbm(rng, h, w, 0.3 * h, 2, stretch=3.0)
        a = np.clip(spec.fog * (0.85 + 0.3 * n), 0.0, 1.0)
        color = 190.0 + 30.0 * n
        canvas.over((slice(0, h), slice(0, w)), a, color, "background")

    rgb = canvas.rgb  # composited in place from here on: fewer full-frame passes
    if spec.brightness != 1.0 or spec.night:
        contrast = 0.7 if spec.night else 1.0  # night: lower contrast around the mean
        mean = float(rgb.mean())
        rgb *= np.float32(contrast * spec.brightness)
        rgb += np.float32(mean * (1.0 - contrast) * spec.brightness)
    if lava is not None and spec.night:
        box, a, color = lava
        # lava is emissive: it keeps its colour at night where not hidden, and glows around
        visible = (canvas.label[box] == _LABEL["lava"]).astype(np.float32) * a
        region = rgb[(slice(None), *box)]
        region *= 1.0 - visible
        region += visible * color
        r = max(2, int(0.01 * h))
        glow = _blur(visible, r) * 0.5
        region += _tint((200.0, 60.0, 10.0), glow)
    if spec.noise > 0:
        # uniform noise with the requested sigma: much cheaper than Gaussian draws
        grain = rng.random((3, h, w), dtype=np.float32)
        amplitude = spec.noise * 3.4641
        grain *= np.float32(amplitude)
        grain -= np.float32(0.5 * amplitude)
        rgb += grain
    np.clip(rgb, 0.0, 255.0, out=rgb)
    planes = rgb.astype(np.uint8)
    return np.stack((planes[0], planes[1], planes[2]), axis=-1), canvas.label


# --------------------------------------------------------------------------- random specs

_ASPECTS: tuple[tuple[int, int], ...] = ((4, 3), (16, 9), (1, 1), (3, 4))
_LAND_COLORS: tuple[RGB, ...] = ((112, 88, 64), (80, 92, 58), (70, 64, 60), (120, 100, 78))


def _random_size(rng: np.random.Generator) -> tuple[int, int]:
    aw, ah = _ASPECTS[int(rng.integers(len(_ASPECTS)))]
    if aw >= ah:
        width = int(rng.integers(320, 1921))
        height = round(width * ah / aw)
    else:  # portrait: at most 1440 tall
        width = int(rng.integers(320, 1081))
        height = round(width * ah / aw)
    return width, height


def random_mountain(rng: np.random.Generator) -> Mountain:
    """A volcano as seen from one camera position."""
    seed = int(rng.integers(2**31))
    return Mountain(
        peak_x=float(rng.uniform(0.3, 0.7)),
        peak_y=float(rng.uniform(0.38, 0.62)),
        slope_left=float(rng.uniform(0.25, 0.8)),
        slope_right=float(rng.uniform(0.25, 0.8)),
        exponent=float(rng.uniform(1.0, 1.5)),
        crater_width=float(rng.uniform(0.02, 0.07)),
        crater_depth=float(rng.uniform(0.005, 0.03)),
        roughness=float(rng.uniform(0.01, 0.05)),
        color=_LAND_COLORS[int(rng.integers(len(_LAND_COLORS)))],
        foreground=float(rng.uniform(0.78, 0.95)) if rng.random() < 0.5 else 1.0,
        foreground_color=(int(rng.integers(40, 70)), int(rng.integers(60, 90)), 40),
        seed=seed,
    )


def _activity_set(activity: Collection[str] | None, rng: np.random.Generator) -> set[str]:
    """Normalise requested activity names to scene elements; draw them when None."""
    if activity is None:
        chosen: set[str] = set()
        if rng.random() < 0.12:
            return chosen
        if rng.random() < 0.55:
            chosen.add("eruption_column")
        if rng.random() < 0.45:
            chosen.add("eruption_cloud")
            if rng.random() < 0.3:
                chosen.add("pyroclastic_flow")
        if rng.random() < 0.5:
            chosen.add("low_temperature_gas" if rng.random() < 0.5 else "high_temperature_gas")
        if rng.random() < 0.35:
            chosen.add("lava_flow" if rng.random() < 0.6 else "lava_fountain")
        return chosen
    unknown = sorted(set(activity) - set(ACTIVITY_NAMES))
    if unknown:
        raise ValueError(f"unknown activity {unknown}; valid names: {', '.join(ACTIVITY_NAMES)}")
    out = set(activity)
    if "ash_emissions" in out:
        out.discard("ash_emissions")
        out.add("eruption_cloud")
        if rng.random() < 0.3:
            out.add("pyroclastic_flow")
    if "non_ash_emissions" in out:
        out.discard("non_ash_emissions")
        out.add("low_temperature_gas" if rng.random() < 0.5 else "high_temperature_gas")
    if "lava" in out:
        out.discard("lava")
        out.add("lava_flow" if rng.random() < 0.6 else "lava_fountain")
    return out


def random_scene_spec(
    rng: np.random.Generator,
    *,
    size: tuple[int, int] | None = None,
    view_seed: int | None = None,
    activity: Collection[str] | None = None,
    night: bool | None = None,
    cloud_cover: float | None = None,
) -> SceneSpec:
    """Draw a varied scene. ``size`` is (width, height), random sizes and aspects when None.

    ``view_seed`` fixes the mountain (one camera always sees the same volcano). ``activity``
    names what is erupting (see :data:`ACTIVITY_NAMES`; model class names pick a matching
    label class); None draws it at random, an empty collection gives a quiet volcano.
    """
    width, height = _random_size(rng) if size is None else (int(size[0]), int(size[1]))
    if width < 16 or height < 16:
        raise ValueError(f"scene size {width}x{height} is too small; use at least 16x16")
    mountain = random_mountain(np.random.default_rng(view_seed) if view_seed is not None else rng)
    is_night = bool(rng.random() < 0.2) if night is None else bool(night)
    cover = float(rng.beta(0.8, 1.6)) if cloud_cover is None else float(cloud_cover)
    acts = _activity_set(activity, rng)
    wind = 1 if rng.random() < 0.5 else -1

    if is_night:
        top = (int(rng.integers(3, 15)), int(rng.integers(5, 18)), int(rng.integers(15, 35)))
        hor = (int(rng.integers(20, 45)), int(rng.integers(20, 45)), int(rng.integers(30, 60)))
        brightness = float(rng.uniform(0.3, 0.5))
    elif cover > 0.7:
        g = int(rng.integers(150, 200))
        top = (g - 10, g - 5, g + 5)
        hor = (g + 20, g + 20, g + 22)
        brightness = 1.0
    else:
        top = (int(rng.integers(40, 110)), int(rng.integers(110, 170)), int(rng.integers(190, 240)))
        if rng.random() < 0.15:  # dawn / dusk
            hor = (int(rng.integers(220, 250)), int(rng.integers(160, 200)), 130)
        else:
            hor = (int(rng.integers(170, 215)), int(rng.integers(195, 230)), 235)
        brightness = float(rng.uniform(0.85, 1.1))

    column = ash = pyro = gas = lava = None
    if "eruption_column" in acts:
        column = Column(
            height=float(rng.uniform(0.25, 0.55)),
            width=float(rng.uniform(0.07, 0.16)),
            darkness=float(rng.uniform(0.2, 0.9)),
            lean=float(wind * rng.uniform(0.0, 0.25)),
        )
    if "eruption_cloud" in acts:
        ash = AshCloud(
            length=float(rng.uniform(0.4, 1.2)),
            thickness=float(rng.uniform(0.03, 0.08)),
            rise=float(rng.uniform(0.0, 0.15)),
            from_column=column is not None,
        )
    if "pyroclastic_flow" in acts:
        pyro = PyroclasticFlow(
            side=1 if rng.random() < 0.5 else -1,
            length=float(rng.uniform(0.15, 0.45)),
            thickness=float(rng.uniform(0.03, 0.07)),
        )
    gas_kind = {"low_temperature_gas": "low", "high_temperature_gas": "high"}
    for name, temperature in gas_kind.items():
        if name in acts:
            gas = GasPlume(
                temperature=temperature,
                rise=float(rng.uniform(0.08, 0.3)),
                length=float(rng.uniform(0.3, 0.9)),
                width=float(rng.uniform(0.02, 0.06)),
                opacity=float(rng.uniform(0.6, 0.95)),
            )
    if "lava_flow" in acts:
        lava = Lava(
            kind="flow",
            side=1 if rng.random() < 0.5 else -1,
            length=float(rng.uniform(0.1, 0.3)),
            width=float(rng.uniform(0.008, 0.02)),
        )
    elif "lava_fountain" in acts:
        lava = Lava(
            kind="fountain",
            side=1,
            length=float(rng.uniform(0.04, 0.12)),
            width=float(rng.uniform(0.01, 0.025)),
        )
    return SceneSpec(
        width=width,
        height=height,
        night=is_night,
        sky_top=top,
        sky_horizon=hor,
        cloud_cover=cover,
        haze=float(rng.uniform(0.0, 0.35)),
        wind=wind,
        mountain=mountain,
        column=column,
        ash_cloud=ash,
        pyroclastic_flow=pyro,
        gas=gas,
        lava=lava,
        summit_cloud=bool(cover > 0.6 and rng.random() < 0.4),
        brightness=brightness,
        noise=float(rng.uniform(1.5, 5.0)),
        seed=int(rng.integers(2**31)),
    )


def render_random(
    seed: int, *, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A random scene, deterministic in ``seed``: (RGB uint8 H x W x 3, label uint8 H x W)."""
    return render_scene(random_scene_spec(np.random.default_rng(seed), size=size))


def make_dataset(n: int, seed: int, size: int = 518) -> tuple[np.ndarray, np.ndarray]:
    """``n`` square training samples: images (N,S,S,3) uint8 and MODEL-class labels (N,S,S).

    Sample ``i`` comes from its own seed sequence ``(seed, i)``, so datasets drawn with
    different ``seed`` values never share a scene.
    """
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        spec = random_scene_spec(np.random.default_rng([seed, i]), size=(size, size))
        rgb, label = render_scene(spec)
        images[i] = rgb
        labels[i] = merge_labels(label)
    return images, labels


def with_size(spec: SceneSpec, width: int, height: int) -> SceneSpec:
    """The same scene drawn at another size (geometry scales with the height)."""
    return replace(spec, width=int(width), height=int(height))
