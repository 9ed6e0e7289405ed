"""Labelled images for training and evaluation: the dataset contract and its readers.

A dataset is anything with ``len()`` and ``ds[i] -> (image uint8 H x W x 3, mask uint8
H x W of model-class indices, IGNORE_INDEX = 255 = unlabelled)``
(:class:`SegmentationDataset`). :class:`ArrayDataset` wraps in-memory arrays of one size,
:class:`ListDataset` a list of pairs of any sizes, and :func:`read_mask_pairs` reads a
folder of images with ``NAME_mask.png`` label masks beside them. LabelMe files have their
own reader, :class:`plumenet.training.labelme.LabelMeDataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from PIL import Image

from plumenet.classes import merge_labels
from plumenet.errors import ConfigError
from plumenet.inference.decode import decode_rgb

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_SUFFIXES",
    "ArrayDataset",
    "ListDataset",
    "SegmentationDataset",
    "images_without_masks",
    "read_mask_pairs",
]

#: Mask value of unlabelled pixels: no loss, no metric.
IGNORE_INDEX = 255
#: Image files :func:`read_mask_pairs` pairs with a ``NAME_mask.png``.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


class SegmentationDataset(Protocol):
    """``len(ds)`` samples; ``ds[i]`` is ``(image uint8 H x W x 3, mask uint8 H x W)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class ArrayDataset:
    """In-memory images (``N x H x W x 3`` uint8) and masks (``N x H x W`` model classes)."""

    images: np.ndarray
    labels: np.ndarray
    names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be N x H x W x 3, got {self.images.shape}")
        if self.labels.shape != self.images.shape[:3]:
            raise ValueError(
                f"labels shape {self.labels.shape} does not match images {self.images.shape[:3]}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]


class ListDataset:
    """Samples of any sizes held in a list of ``(image, mask)`` pairs."""

    def __init__(
        self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], names: Sequence[str] | None = None
    ) -> None:
        for i, (img, mask) in enumerate(pairs):
            if img.ndim != 3 or img.shape[-1] != 3 or mask.shape != img.shape[:2]:
                raise ValueError(
                    f"sample {i}: image {img.shape} and mask {mask.shape} do not match "
                    "(need H x W x 3 and H x W)"
                )
        self.pairs = list(pairs)
        self.names = list(names) if names is not None else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs[index]


def read_mask_pairs(
    directory: Path, mask_classes: Literal["model", "label"] = "model"
) -> ListDataset:
    """Images with ``NAME_mask.png`` label masks beside them, anywhere below ``directory``.

    A mask is a single-channel PNG of the image's size holding class indices (255 =
    unlabelled): the 6 model classes (``mask_classes="model"``) or the 8 label classes
    (``"label"``, merged with :func:`plumenet.classes.merge_labels`). Samples are named by
    their image path and come in the sorted order of the mask paths.
    """
    pairs, names = [], []
    for mask_path in sorted(directory.rglob("*_mask.png")):
        stem = mask_path.name[: -len("_mask.png")]
        images = [
            p
            for p in mask_path.parent.glob(f"{stem}.*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p != mask_path
        ]
        if not images:
            raise ConfigError(
                f"{mask_path}: no image {stem}.jpg/.png beside it; keep each image next to "
                "its NAME_mask.png"
            )
        image = np.asarray(decode_rgb(images[0].read_bytes(), source=str(images[0])))
        mask = np.asarray(Image.open(mask_path))
        if mask.ndim != 2:
            raise ConfigError(f"{mask_path}: a mask must be a single-channel PNG of class indices")
        if mask.shape != image.shape[:2]:
            raise ConfigError(
                f"{mask_path}: mask {mask.shape[1]} x {mask.shape[0]} differs from image "
                f"{image.shape[1]} x {image.shape[0]}"
            )
        if mask_classes == "label":
            valid = mask != IGNORE_INDEX
            merged = np.full(mask.shape, IGNORE_INDEX, dtype=np.uint8)
            merged[valid] = merge_labels(mask[valid])
            mask = merged
        elif mask.size and int(mask[mask != IGNORE_INDEX].max(initial=0)) > 5:
            raise ConfigError(
                f"{mask_path}: holds class index {int(mask[mask != IGNORE_INDEX].max())} but "
                "model masks use 0-5 (255 = unlabelled); pass --mask-classes label for "
                "8-class masks"
            )
        pairs.append((image, mask.astype(np.uint8)))
        names.append(str(images[0]))
    if pairs and all((m == IGNORE_INDEX).all() for _, m in pairs):
        raise ConfigError(
            f"{directory}: the {len(pairs)} NAME_mask.png mask(s) hold no labelled pixels (all "
            f"{IGNORE_INDEX} = unlabelled), so there is nothing to evaluate; write class indices "
            "into the masks (0-5, or 0-7 with --mask-classes label)"
        )
    return ListDataset(pairs, names)


def images_without_masks(directory: Path) -> list[Path]:
    """Images below ``directory`` with no ``NAME_mask.png`` beside them (sorted): what
    :func:`read_mask_pairs` leaves out, for the caller to report rather than skip silently."""
    masked = {p.with_name(p.name[: -len("_mask.png")]) for p in directory.rglob("*_mask.png")}
    return sorted(
        p
        for p in directory.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not p.name.endswith("_mask.png")
        and p.with_suffix("") not in masked
        and p.is_file()
    )
