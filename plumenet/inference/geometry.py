"""Per-frame plume geometry from a batch of class maps, on the device (docs/geometry.md).

For each frame and each emission kind of :data:`PLUME_KINDS` ("any emission" = eruption
column + ash + non-ash; and the eruption column alone) :func:`plume_geometry` measures, from
the argmax class map at the model's input resolution and inside the ROI:

- ``top_row``: the robust top of the emission, the lowest row ``r`` such that at most
  ``share`` (default 1 %) of the emission pixels lie above it (rows ``< r``); with
  ``share = 0`` it is the top-most emission row. A few stray pixels high in the sky
  (cloud edges mistaken for ash) do not move it;
- ``center_col``: the mean column of the emission pixels (horizontal centroid);
- ``width``: the robust horizontal extent, from the column with ``share`` of the pixels to
  its left to the one with ``share`` to its right, plus one pixel.

All three are in the ORIGINAL frame's pixel coordinates (x to the right, y down, pixel
centres at integers): a model-size row ``r`` maps to ``(r + 0.5) * H / S - 0.5`` for a frame
of height ``H`` resized to ``S``; a width scales by ``W / S``. NaN where a frame has no
emission pixel. Everything is torch ops over the whole batch: no per-frame Python loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from plumenet.classes import MODEL_CLASSES, PLUME_KIND_CLASSES, PLUME_KINDS

__all__ = ["COLUMN_SHARE", "PLUME_KINDS", "PlumeGeometry", "emission_masks", "plume_geometry"]

#: Default share of the emission pixels allowed above the reported top row (and beyond
#: each side of the reported extent).
COLUMN_SHARE: float = 0.01


@dataclass(frozen=True)
class PlumeGeometry:
    """Float32 tensors ``(N, len(PLUME_KINDS))`` in original-frame pixels; NaN: no emission."""

    top_row: torch.Tensor
    center_col: torch.Tensor
    width: torch.Tensor


def emission_masks(labels: torch.Tensor, roi: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, S, S)`` class indices -> float ``(N, S, S, K)``: 1 where the pixel counts for
    kind ``k`` of :data:`PLUME_KINDS` (never outside the boolean ``S x S`` ``roi``).

    One table lookup (class -> kinds; an extra all-zero row for pixels outside the ROI),
    about 3x faster on this 2-core CPU than one comparison per class (16 x 518 x 518 maps).
    """
    table = _kind_table(labels.device)
    if roi is not None:
        labels = torch.where(roi, labels, len(MODEL_CLASSES))
    return table[labels.long()]


@functools.cache
def _kind_table(device: torch.device) -> torch.Tensor:
    """Class -> kinds, built once per device: filling it element by element on a CUDA
    device copies a CPU scalar per element, each a synchronisation."""
    table = torch.zeros(len(MODEL_CLASSES) + 1, len(PLUME_KINDS))
    for k, kind in enumerate(PLUME_KINDS):
        for name in PLUME_KIND_CLASSES[kind]:
            table[MODEL_CLASSES.index(name), k] = 1.0
    return table.to(device)


def _robust_first(counts: torch.Tensor, share: float) -> torch.Tensor:
    """Per row of ``counts`` (..., L): the largest index ``i`` with at most ``share`` of the
    total strictly before ``i`` (the first non-empty index when ``share = 0``)."""
    before = torch.cumsum(counts, dim=-1) - counts
    total = counts.sum(dim=-1, keepdim=True)
    return (before <= share * total).sum(dim=-1) - 1


def plume_geometry(
    labels: torch.Tensor,
    frame_sizes: torch.Tensor | None = None,
    *,
    roi: torch.Tensor | None = None,
    share: float = COLUMN_SHARE,
) -> PlumeGeometry:
    """Top row, centroid column and width of each emission kind per frame.

    ``labels``: ``(N, S, S)`` class indices at the model input size (the argmax map);
    ``frame_sizes``: ``(N, 2)`` original ``(height, width)`` of each frame (``None``: the
    frames are ``S x S``); ``roi``: boolean ``S x S`` on the same device.
    """
    if not 0.0 <= share < 0.5:
        raise ValueError(f"share must be in [0, 0.5), got {share}")
    n, s_rows, s_cols = labels.shape
    masks = emission_masks(labels, roi)  # N x S x S x K
    rows = masks.sum(dim=2).transpose(1, 2)  # N x K x S (pixels per row)
    cols = masks.sum(dim=1).transpose(1, 2)  # N x K x S (pixels per column)
    total = rows.sum(dim=2)  # N x K
    top = _robust_first(rows, share).float()
    left = _robust_first(cols, share).float()
    right = (s_cols - 1 - _robust_first(cols.flip(-1), share)).float()
    index = torch.arange(s_cols, device=labels.device, dtype=torch.float32)
    centroid = (cols * index).sum(dim=2) / total.clamp(min=1.0)
    if frame_sizes is None:
        heights = torch.full((n, 1), float(s_rows), device=labels.device)
        widths = torch.full((n, 1), float(s_cols), device=labels.device)
    else:
        sizes = frame_sizes.to(device=labels.device, dtype=torch.float32)
        heights, widths = sizes[:, 0:1], sizes[:, 1:2]
    sy, sx = heights / s_rows, widths / s_cols
    nan = torch.full((), float("nan"), device=labels.device)  # no host copy: no CUDA sync
    empty = total <= 0
    return PlumeGeometry(
        top_row=torch.where(empty, nan, (top + 0.5) * sy - 0.5),
        center_col=torch.where(empty, nan, (centroid + 0.5) * sx - 0.5),
        width=torch.where(empty, nan, (right - left + 1.0) * sx),
    )
