"""Colour a frame by its predicted classes (``CLASS_COLORS``) with a small legend."""

from __future__ import annotations

import contextlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from plumenet.classes import MODEL_CLASSES, color_palette

__all__ = ["overlay_png"]


def _legend(img: Image.Image, classes: tuple[str, ...], present: set[int]) -> None:
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    line = max(12, img.height // 40)
    with contextlib.suppress(TypeError):  # Pillow without FreeType keeps the bitmap font
        font = ImageFont.load_default(size=max(10, line - 2))
    palette = color_palette()
    pad = max(3, line // 4)
    widths = [draw.textlength(name.replace("_", " "), font=font) for name in classes]
    box_w = int(pad * 3 + line + max(widths))
    box_h = int(pad * 2 + line * len(classes))
    draw.rectangle([0, 0, box_w, box_h], fill=(0, 0, 0))
    for i, name in enumerate(classes):
        y = pad + i * line
        colour = tuple(int(v) for v in palette[i])
        draw.rectangle([pad, y + 1, pad + line - 3, y + line - 2], fill=colour)
        text_colour = (255, 255, 255) if i in present else (150, 150, 150)
        draw.text((pad * 2 + line, y), name.replace("_", " "), fill=text_colour, font=font)


def overlay_png(
    image: Image.Image, class_map: np.ndarray, alpha: float = 0.5, *, legend: bool = True
) -> Image.Image:
    """Blend class colours over ``image`` (RGB) and draw a legend in the top-left corner.

    ``class_map`` is H x W uint8 class indices in model order at any resolution; it is
    resized to the image with nearest-neighbour sampling. ``alpha`` is the colour
    opacity (0 = image only, 1 = colours only). Classes absent from the map are greyed
    in the legend.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    cmap = np.asarray(class_map)
    if cmap.ndim != 2:
        raise ValueError(f"class_map must be 2-D, got shape {cmap.shape}")
    palette = color_palette()
    if cmap.size and int(cmap.max()) >= len(palette):
        raise ValueError(f"class_map holds index {int(cmap.max())}; classes are 0..5")
    rgb = image.convert("RGB")
    width, height = rgb.size
    if cmap.shape != (height, width):
        resized = Image.fromarray(cmap.astype(np.uint8), "L").resize(
            (width, height), Image.Resampling.NEAREST
        )
        cmap = np.asarray(resized)
    base = np.asarray(rgb, dtype=np.float32)
    colours = palette[cmap].astype(np.float32)
    blended = np.clip(base * (1.0 - alpha) + colours * alpha + 0.5, 0, 255).astype(np.uint8)
    out = Image.fromarray(blended, "RGB")
    if legend:
        _legend(out, MODEL_CLASSES, {int(v) for v in np.unique(cmap)})
    return out
