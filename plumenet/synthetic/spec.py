"""What a synthetic scene shows: the frozen scene description and random draws of it.

A :class:`SceneSpec` holds everything needed to draw one frame (sky, weather, the
:class:`Mountain` of the camera view and optional :class:`Column`, :class:`AshCloud`,
:class:`PyroclasticFlow`, :class:`GasPlume` and :class:`Lava` layers);
``plumenet.synthetic.render.render_scene`` is a pure function of it. Geometric lengths are in
units of the image height (a scene looks the same at any resolution, see :func:`with_size`);
horizontal positions are fractions of the width. :func:`random_scene_spec` draws varied
scenes, with a fixed mountain per ``view_seed`` and the activity named in
:data:`ACTIVITY_NAMES`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np

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


def vent_position(spec: SceneSpec) -> tuple[float, float]:
    """(x, y) pixel position of the vent: the crater floor's middle."""
    m = spec.mountain
    x = m.peak_x * spec.width
    y = (m.peak_y + 0.6 * m.crater_depth) * spec.height
    return x, y


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


def with_size(spec: SceneSpec, width: int, height: int) -> SceneSpec:
    """The same scene drawn at another size (geometry scales with the height)."""
    return replace(spec, width=int(width), height=int(height))
