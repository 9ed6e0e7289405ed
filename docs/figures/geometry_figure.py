"""Draw docs/geometry.png (the pinhole geometry and the worked example of docs/geometry.md).

python docs/figures/geometry_figure.py
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from plumenet.science.geometry import pinhole_drift_m, pinhole_height_m

#: The worked example of docs/geometry.md.
W, H = 1280, 720
VENT_X, VENT_Y = 640.0, 500.0
TOP_ROW, CENTER_COL = 180.0, 760.0
D, FOV, TILT = 8000.0, 40.0, 5.0


def main() -> None:
    view = {"distance_m": D, "vertical_fov_deg": FOV, "tilt_deg": TILT}
    height = float(pinhole_height_m(np.array([TOP_ROW]), np.array([H]), vent_y=VENT_Y, **view)[0])
    drift = float(
        pinhole_drift_m(
            np.array([CENTER_COL]), np.array([H]), vent_x=VENT_X, vent_y=VENT_Y, **view
        )[0]
    )
    f = (H / 2) / math.tan(math.radians(FOV / 2))
    cy = (H - 1) / 2
    a_vent = TILT + math.degrees(math.atan((cy - VENT_Y) / f))
    a_top = TILT + math.degrees(math.atan((cy - TOP_ROW) / f))
    print(f"f = {f:.1f} px, vent elevation {a_vent:.3f} deg, top elevation {a_top:.3f} deg")  # noqa: T201 - script output
    print(f"height above vent {height:.1f} m, drift {drift:.1f} m")  # noqa: T201 - script output

    fig, (side, image) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    # side view: camera at the origin, vertical plane through the vent at x = D
    z_vent = D * math.tan(math.radians(a_vent))
    z_top = D * math.tan(math.radians(a_top))
    side.axhline(0, color="0.8", lw=0.8)
    side.plot(
        [0, D],
        [0, D * math.tan(math.radians(TILT))],
        "k--",
        lw=1,
        label=f"optical axis (tilt {TILT:g} deg)",
    )
    for a in (TILT - FOV / 2, TILT + FOV / 2):
        side.plot([0, D], [0, D * math.tan(math.radians(a))], color="0.6", lw=0.8)
    side.plot(
        [0, D], [0, z_vent], color="tab:brown", lw=1.2, label=f"ray to the vent ({a_vent:.2f} deg)"
    )
    side.plot(
        [0, D], [0, z_top], color="tab:red", lw=1.2, label=f"ray to the plume top ({a_top:.2f} deg)"
    )
    side.axvline(D, color="tab:blue", lw=1, ls=":", label="vertical plane through the vent")
    side.annotate(
        "",
        xy=(D * 1.02, z_top),
        xytext=(D * 1.02, z_vent),
        arrowprops={"arrowstyle": "<->", "color": "tab:red"},
    )
    side.text(D * 1.04, (z_top + z_vent) / 2, f"h = {height:,.0f} m", color="tab:red", va="center")
    side.plot([D], [z_vent], "^", color="tab:brown", ms=9)
    side.plot([0], [0], "ks", ms=7)
    side.text(150, -250, "camera", va="top")
    side.set_xlim(-300, D * 1.45)
    side.set_xlabel("horizontal distance from the camera (m)")
    side.set_ylabel("height above the camera (m)")
    side.set_title(f"side view: D = {D:,.0f} m, vertical FOV {FOV:g} deg")
    side.legend(loc="upper left", fontsize=7.5)

    # image view: the frame in pixels (y down)
    image.add_patch(plt.Rectangle((0, 0), W, H, fill=False, color="k"))
    xs = VENT_X + (CENTER_COL - VENT_X) * np.linspace(0, 1, 30) ** 0.7
    r_end = 15 + 3.2 * 29  # the last puff's radius: its top lies just above the top row
    ys = VENT_Y - (VENT_Y - (TOP_ROW - 8 + r_end)) * np.linspace(0, 1, 30)
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        image.add_patch(plt.Circle((x, y), 15 + 3.2 * k, color="0.55", alpha=0.25, lw=0))
    image.axhline(TOP_ROW, color="tab:red", lw=1)
    image.text(
        20,
        TOP_ROW - 12,
        f"top row {TOP_ROW:g} (1 % of the emission above)",
        color="tab:red",
        fontsize=8,
    )
    image.axvline(CENTER_COL, color="tab:green", lw=1)
    image.text(
        CENTER_COL + 10, H - 20, f"centroid column {CENTER_COL:g}", color="tab:green", fontsize=8
    )
    image.plot([VENT_X], [VENT_Y], "^", color="tab:brown", ms=9)
    image.text(
        VENT_X - 10,
        VENT_Y + 40,
        f"vent ({VENT_X:g}, {VENT_Y:g})",
        color="tab:brown",
        ha="right",
        fontsize=8,
    )
    image.annotate(
        "",
        xy=(CENTER_COL, VENT_Y),
        xytext=(VENT_X, VENT_Y),
        arrowprops={"arrowstyle": "->", "color": "tab:green"},
    )
    image.text(
        (VENT_X + CENTER_COL) / 2 + 60,
        VENT_Y + 30,
        f"drift {drift:,.0f} m",
        color="tab:green",
        ha="center",
        fontsize=8,
    )
    image.set_xlim(0, W)
    image.set_ylim(H, 0)
    image.set_aspect("equal")
    image.set_xlabel("column x (px)")
    image.set_ylabel("row y (px)")
    image.set_title(f"the frame: {W} x {H} px")
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "geometry.png"
    fig.savefig(out)
    print(f"wrote {out}")  # noqa: T201 - script output


if __name__ == "__main__":
    main()
