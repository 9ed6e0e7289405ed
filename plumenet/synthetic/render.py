"""Drawing whole synthetic scenes with exact 8-class labels (tests, demo model, benchmarks).

:func:`render_scene` draws a :class:`SceneSpec` as a stack of layers, back to front: sky, far
clouds, mountain (and foreground hill), gas plume, ash cloud, eruption column, pyroclastic
flow, lava, near clouds, fog; then night darkening, lava glow and sensor noise. A pixel's
label is that of the topmost layer opaque enough there (the rule of
``plumenet.synthetic.canvas``); lava glow and sensor noise change colours only.
:func:`render_random` and :func:`make_dataset` draw random scenes deterministically from a
seed.
"""

from __future__ import annotations

import numpy as np

from plumenet.classes import merge_labels
from plumenet.synthetic.activity_layers import (
    paint_ash,
    paint_column,
    paint_gas,
    paint_lava,
    paint_pyroclastic,
)
from plumenet.synthetic.canvas import LABEL_INDEX, Canvas, box_blur, fbm, tint
from plumenet.synthetic.scenery_layers import mountain_layer, paint_clouds, sky_gradient
from plumenet.synthetic.spec import SceneSpec, random_scene_spec, vent_position


def render_scene(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``spec``: RGB uint8 (H x W x 3) and its exact label mask uint8 (H x W, 8 classes)."""
    h, w = spec.height, spec.width
    rng = np.random.default_rng(spec.seed)
    canvas = Canvas(sky_gradient(spec), np.zeros((h, w), dtype=np.uint8))

    paint_clouds(canvas, spec, rng, near=False)

    ridge, land_a, land_rgb = mountain_layer(spec.mountain, w, h)
    hor = np.asarray(spec.sky_horizon, dtype=np.float32)
    land_box = (slice(max(int(ridge.min()) - 1, 0), h), slice(0, w))
    land_color = land_rgb[(slice(None), *land_box)] * np.float32(1.0 - spec.haze)
    land_color += hor[:, None, None] * np.float32(spec.haze)
    canvas.over(land_box, land_a[land_box], land_color, "land")

    vx, vy = vent_position(spec)
    if spec.gas is not None:
        paint_gas(canvas, spec, rng, vx, vy)
    if spec.ash_cloud is not None:
        paint_ash(canvas, spec, rng, vx, vy)
    if spec.column is not None:
        paint_column(canvas, spec, rng, vx, vy)
    if spec.pyroclastic_flow is not None:
        paint_pyroclastic(canvas, spec, rng, ridge, vx, vy)
    lava = paint_lava(canvas, spec, rng, ridge, vx, vy) if spec.lava is not None else None

    paint_clouds(canvas, spec, rng, near=True)
    if spec.fog > 0:
        n = fbm(rng, h, w, 0.3 * h, 2, stretch=3.0)
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
        visible = (canvas.label[box] == LABEL_INDEX["lava"]).astype(np.float32) * a
        region = rgb[(slice(None), *box)]
        region *= 1.0 - visible
        region += visible * color
        r = max(2, int(0.01 * h))
        glow = box_blur(visible, r) * 0.5
        region += tint((200.0, 60.0, 10.0), glow)
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
