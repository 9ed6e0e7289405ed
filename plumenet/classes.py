"""Class taxonomy of VIGIA-PlumeData (8 label classes) and VIGIA-PlumeNet (6 model classes)."""

from __future__ import annotations

import numpy as np

#: Label classes as released with VIGIA-PlumeData, in label-index order.
LABEL_CLASSES: tuple[str, ...] = (
    "background",
    "eruption_column",
    "land",
    "eruption_cloud",
    "pyroclastic_flow",
    "low_temperature_gas",
    "high_temperature_gas",
    "lava",
)

#: Classes the model predicts, in output-channel order.
MODEL_CLASSES: tuple[str, ...] = (
    "background",
    "land",
    "eruption_column",
    "ash_emissions",
    "non_ash_emissions",
    "lava",
)

#: Which model class each label class merges into (cloud + pyroclastic flow -> ash;
#: low + high temperature gas -> non-ash).
LABEL_TO_MODEL: dict[str, str] = {
    "background": "background",
    "eruption_column": "eruption_column",
    "land": "land",
    "eruption_cloud": "ash_emissions",
    "pyroclastic_flow": "ash_emissions",
    "low_temperature_gas": "non_ash_emissions",
    "high_temperature_gas": "non_ash_emissions",
    "lava": "lava",
}

#: Model classes that are volcanic emissions (everything but background and land).
EMISSION_CLASSES: tuple[str, ...] = MODEL_CLASSES[2:]

#: Emission kinds whose plume geometry is measured per frame (docs/geometry.md), in store
#: order, with the model classes each counts (lava flows down the flank: not a plume).
PLUME_KIND_CLASSES: dict[str, tuple[str, ...]] = {
    "any_emission": ("eruption_column", "ash_emissions", "non_ash_emissions"),
    "eruption_column": ("eruption_column",),
}
PLUME_KINDS: tuple[str, ...] = tuple(PLUME_KIND_CLASSES)

#: RGB colour per model class, used by overlays and figures.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "background": (70, 130, 180),
    "land": (110, 90, 60),
    "eruption_column": (220, 20, 60),
    "ash_emissions": (128, 128, 128),
    "non_ash_emissions": (240, 240, 240),
    "lava": (255, 140, 0),
}

#: Lookup table: label index -> model index.
LABEL_TO_MODEL_INDEX: np.ndarray = np.array(
    [MODEL_CLASSES.index(LABEL_TO_MODEL[name]) for name in LABEL_CLASSES], dtype=np.uint8
)


def merge_labels(label_mask: np.ndarray) -> np.ndarray:
    """Map an 8-class label mask (H x W, label indices) to the 6 model classes."""
    if label_mask.size and int(label_mask.max()) >= len(LABEL_CLASSES):
        raise ValueError(
            f"label mask holds index {int(label_mask.max())}; valid label indices are "
            f"0..{len(LABEL_CLASSES) - 1} ({', '.join(LABEL_CLASSES)})"
        )
    return LABEL_TO_MODEL_INDEX[label_mask]


def color_palette() -> np.ndarray:
    """6 x 3 uint8 array of class colours in model order."""
    return np.array([CLASS_COLORS[name] for name in MODEL_CLASSES], dtype=np.uint8)
