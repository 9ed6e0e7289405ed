"""Painters of the volcanic activity layers: gas plume, ash cloud, column, flows and lava.

Each ``paint_*`` function draws one optional layer of a :class:`SceneSpec` from the vent
position onto a :class:`Canvas` and labels it with its class (``low/high_temperature_gas``
at :data:`GAS_THRESHOLD`, the others at the opaque threshold). :func:`paint_lava` also
returns the lava's box, opacity and colour, which the renderer needs for the night glow.
"""

from __future__ import annotations

import numpy as np

from plumenet.synthetic.canvas import (
    GAS_THRESHOLD,
    Canvas,
    bounding_box,
    fbm,
    pixel_grid,
    tint,
    value_noise,
)
from plumenet.synthetic.spec import SceneSpec


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


def paint_gas(
    canvas: Canvas, spec: SceneSpec, rng: np.random.Generator, vx: float, vy: float
) -> None:
    """The translucent gas plume bent downwind from the vent (low/high_temperature_gas)."""
    g = spec.gas
    assert g is not None
    h, w = spec.height, spec.width
    th0, length, rise = g.width * h, g.length * h, g.rise * h
    growth = 0.35
    maxth = th0 + growth * length
    x_lo, x_hi = (vx - th0, vx + length) if spec.wind > 0 else (vx - length, vx + th0)
    box = bounding_box(vy - rise - maxth * 1.5, vy + 2, x_lo, x_hi, h, w)
    if box is None:
        return
    y, x = pixel_grid(box)
    yc, th, perp = _bent_plume_geometry(x, vx, vy, spec.wind, rise, length, th0, growth)
    bh, bw = y.shape[0], x.shape[1]
    wisps = fbm(rng, bh, bw, max(th0 * 0.8, 2.0), 3, stretch=3.0)
    dist = np.abs(y - yc) * perp / np.maximum(th, 1e-3)
    prof = np.exp(-2.2 * dist**2)
    a = g.opacity * prof * np.clip(0.35 + 1.0 * wisps, 0.0, 1.2)
    a = np.clip(a, 0.0, 1.0) * np.clip(vy - y + 2.0, 0.0, 1.0)
    base = np.array(
        [242.0, 242.0, 240.0] if g.temperature == "low" else [236, 240, 248], np.float32
    )
    color = tint(base, 0.9 + 0.12 * wisps)
    cls = "low_temperature_gas" if g.temperature == "low" else "high_temperature_gas"
    canvas.over(box, a, color, cls, GAS_THRESHOLD)


def _column_top(spec: SceneSpec, vx: float, vy: float) -> tuple[float, float]:
    c = spec.column
    assert c is not None
    hh = c.height * spec.height
    return vx + c.lean * hh, vy - hh


def paint_ash(
    canvas: Canvas, spec: SceneSpec, rng: np.random.Generator, vx: float, vy: float
) -> None:
    """The ash cloud drifting downwind from the column top or the vent (eruption_cloud)."""
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
    box = bounding_box(sy - rise - maxth * 1.4, sy + maxth * 1.4, x_lo, x_hi, h, w)
    if box is None:
        return
    y, x = pixel_grid(box)
    yc, th, perp = _bent_plume_geometry(x, sx, sy, spec.wind, rise, length, th0, growth)
    bh, bw = y.shape[0], x.shape[1]
    edge = fbm(rng, bh, bw, max(th0 * 0.7, 2.0), 2, stretch=2.0)
    smooth = value_noise(rng, bh, bw, max(th0 * 1.5, 2.0), max(th0 * 3.0, 2.0))
    lim = th * (0.85 + 0.4 * (edge - 0.5))
    d = np.abs(y - yc) * perp
    a = np.clip(lim - d + 0.5, 0.0, 1.0)
    vert = np.clip((y - (yc - th)) / np.maximum(2 * th, 1.0), 0.0, 1.0)
    shade = (1.05 - 0.2 * vert) * (0.88 + 0.22 * smooth)
    color = tint((142.0, 124.0, 104.0), shade)
    canvas.over(box, a, color, "eruption_cloud")


def paint_column(
    canvas: Canvas, spec: SceneSpec, rng: np.random.Generator, vx: float, vy: float
) -> None:
    """The convective eruption column rising from the vent (eruption_column)."""
    c = spec.column
    assert c is not None
    h, w = spec.height, spec.width
    height = c.height * h
    hw0 = 0.5 * c.width * h
    hw_top = hw0 * 2.2
    tx, ty = _column_top(spec, vx, vy)
    box = bounding_box(
        ty - hw_top * 1.5,
        vy + 1,
        min(vx, tx) - hw_top * 1.4,
        max(vx, tx) + hw_top * 1.4,
        h,
        w,
    )
    if box is None:
        return
    y, x = pixel_grid(box)
    bh, bw = y.shape[0], x.shape[1]
    above = np.clip(vy - y, 0.0, None)
    frac = np.clip(above / max(height, 1.0), 0.0, 1.0)
    hw = hw0 * (1.0 + 1.2 * frac)
    xc = vx + c.lean * above
    u = (x - xc) / hw
    cap = np.clip((ty + hw_top * 0.8 - y) / (hw_top * 0.8), 0.0, None)
    d = u**2 + cap**2
    lumps = fbm(rng, bh, bw, max(hw0 * 0.7, 2.0), 3, billow=True)
    edge = (1.0 + 0.5 * (lumps - 0.5)) ** 2
    a = np.clip((edge - d) * hw * 0.5, 0.0, 1.0) * np.clip(vy - y + 0.5, 0.0, 1.0)
    tex = fbm(rng, bh, bw, max(hw0 * 0.45, 2.0), 3, billow=True)
    lit = np.clip(-u * 0.5 + 0.5, 0.0, 1.0)  # lit from the left
    shade = 0.45 + 0.9 * tex * (0.6 + 0.6 * lit) + 0.15 * (lumps - 0.5)
    grey = 125.0 - 85.0 * c.darkness
    color = tint((grey, grey * 0.98, grey * 0.96), np.clip(shade, 0.2, 1.9))
    canvas.over(box, a, color, "eruption_column")


def paint_pyroclastic(
    canvas: Canvas,
    spec: SceneSpec,
    rng: np.random.Generator,
    ridge: np.ndarray,
    vx: float,
    vy: float,
) -> None:
    """The ash avalanche hugging one flank below the vent (pyroclastic_flow)."""
    p = spec.pyroclastic_flow
    assert p is not None
    h, w = spec.height, spec.width
    run, thick = p.length * h, p.thickness * h
    x_lo, x_hi = (vx, vx + run) if p.side > 0 else (vx - run, vx)
    box = bounding_box(vy - 3 * thick, h, x_lo - thick, x_hi + thick, h, w)
    if box is None:
        return
    y, x = pixel_grid(box)
    bh, bw = y.shape[0], x.shape[1]
    surf = ridge[box[1]][None, :]
    dpos = np.clip((x - vx) * p.side, 0.0, None)
    prog = np.clip(dpos / max(run, 1.0), 0.0, 1.0)
    # body hugs the flank: above the surface by ``th``, below it by a bit less
    th = thick * (0.6 + 0.8 * prog) * np.sqrt(np.clip((1.0 - prog) / 0.15, 0.0, 1.0))
    lumps = fbm(rng, bh, bw, max(thick * 0.5, 2.0), 3, billow=True)
    lim = th * (0.8 + 0.5 * (lumps - 0.5))
    rel = surf - y  # > 0 above the ground
    d = np.where(rel > 0, rel, -rel * 1.6)
    a = np.clip(lim - d + 0.5, 0.0, 1.0) * np.clip((x - vx) * p.side + thick * 0.5, 0.0, 1.0)
    shade = 0.75 + 0.45 * lumps
    color = tint((160.0, 146.0, 128.0), shade)
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
        box = bounding_box(vy - length - width, vy + width, vx - length, vx + length, h, w)
        if box is None:
            return None
        y, x = pixel_grid(box)
        up = np.clip(vy - y, 0.0, None)
        hw = width * 0.5 + 0.45 * up
        spray = fbm(rng, y.shape[0], x.shape[1], max(width * 0.6, 2.0), 2)
        top = length * (0.75 + 0.5 * spray)
        core = np.clip(1.0 - np.abs(x - vx) / hw, 0.0, 1.0) * np.clip(1.0 - up / top, 0.0, 1.0)
        a = np.clip((core - 0.12) * 6.0 + 0.5 * (spray - 0.5), 0.0, 1.0)
        a *= np.clip(vy + width * 0.3 - y, 0.0, 1.0)
        return box, a, core
    drift = 0.5 * lv.side
    box = bounding_box(vy - 2, vy + length + 2, vx - length, vx + length, h, w)
    if box is None:
        return None
    y, x = pixel_grid(box)
    down = np.clip(y - vy, 0.0, None)
    wig = value_noise(rng, y.shape[0], 1, max(length * 0.25, 2.0), 1.0)
    xc = vx + drift * down + (wig - 0.5) * width * 4.0
    hw = width * (1.0 - 0.5 * np.clip(down / max(length, 1.0), 0.0, 1.0))
    core = np.clip(1.0 - np.abs(x - xc) / hw, 0.0, 1.0)
    a = np.clip((np.abs(x - xc) - hw) * -1.0 + 0.5, 0.0, 1.0)
    a *= np.clip(vy + length - y, 0.0, 1.0) * np.clip(y - vy + 0.5, 0.0, 1.0)
    a *= np.clip(y - ridge[box[1]][None, :] - 0.5, 0.0, 1.0)  # on the ground only
    return box, a, core


def paint_lava(
    canvas: Canvas,
    spec: SceneSpec,
    rng: np.random.Generator,
    ridge: np.ndarray,
    vx: float,
    vy: float,
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Lava flow or fountain (lava); returns its box, opacity and colour for the night glow."""
    geo = _lava_alpha(spec, rng, ridge, vx, vy)
    if geo is None:
        return None
    box, a, core = geo
    hot = np.array([255.0, 225.0, 110.0], np.float32)
    edge = np.array([235.0, 70.0, 10.0], np.float32)
    k = np.clip(core * 1.4, 0.0, 1.0)
    color = tint(edge, 1.0 - k) + tint(hot, k)
    canvas.over(box, a, color, "lava")
    return box, a, color
