"""One work-unit batch on a CUDA worker: GPU-decoded JPEGs and Pillow-decoded frames, in order.

The fetch threads hand over the bytes of the JPEGs :func:`~plumenet.inference.gpu_decode.
gpu_decodable` accepts (``LoadedFrame.data``) and decode everything else with Pillow
(``LoadedFrame.frame``). :func:`gather_batch` decodes the bytes of one batch on the GPU in
one call, decodes again with Pillow any frame nvJPEG rejected (so a broken file gets
Pillow's reason, status 2, and never fails the batch), and returns the usable frames as one
device tensor in batch order. :func:`route` is the pure rule of which frame goes where.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from plumenet.errors import UnreadableImageError
from plumenet.inference.decode import load_frame
from plumenet.inference.gpu_decode import GpuDecoded, decode_resize

if TYPE_CHECKING:
    import torch

    from plumenet.jobs.frames import LoadedFrame

__all__ = ["GatheredBatch", "gather_batch", "route"]


def route(batch: Sequence[LoadedFrame]) -> tuple[list[int], list[int]]:
    """Positions in ``batch`` decoded on the GPU (bytes kept) and those already decoded."""
    gpu = [i for i, b in enumerate(batch) if b.frame is None and b.data is not None]
    cpu = [i for i, b in enumerate(batch) if b.frame is not None]
    return gpu, cpu


@dataclass
class GatheredBatch:
    """``frames`` (uint8 ``n x S x S x 3`` on the device) for ``kept`` (positions in the
    batch, in order); ``unreadable`` holds ``(position, reason)`` of the broken ones."""

    frames: torch.Tensor
    kept: list[int]
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    gpu_decoded: int = 0
    decode_s: float = 0.0


def gather_batch(
    batch: Sequence[LoadedFrame],
    size: int,
    device: torch.device,
    decoder: Callable[[Sequence[bytes], int, torch.device], GpuDecoded] = decode_resize,
) -> GatheredBatch:
    """Decode the kept bytes of ``batch`` on ``device`` and join them with the CPU frames.

    ``decoder`` is :func:`~plumenet.inference.gpu_decode.decode_resize` (tests substitute
    one that fails chosen frames, a fault no CPU can cause in nvJPEG)."""
    import torch  # noqa: PLC0415 - the flow driver imports jobs modules; torch loads in workers

    t0 = time.perf_counter()
    gpu, cpu = route(batch)
    on_device: dict[int, torch.Tensor] = {}
    unreadable: list[tuple[int, str]] = []
    host: dict[int, np.ndarray] = {i: batch[i].frame for i in cpu}
    if gpu:
        decoded = decoder([batch[i].data for i in gpu], size, device)
        for row, j in enumerate(decoded.ok):
            on_device[gpu[j]] = decoded.frames[row]
        for j in decoded.failed:
            i = gpu[j]
            try:  # Pillow decides: a frame after all, or the reason it is broken
                host[i] = load_frame(batch[i].data, size, source=batch[i].path)
            except UnreadableImageError as err:
                unreadable.append((i, err.reason))
    if host:  # one pinned, non-blocking upload for the Pillow-decoded frames
        keys = sorted(host)
        stacked = torch.from_numpy(np.stack([host[i] for i in keys]))
        if device.type == "cuda":
            stacked = stacked.pin_memory()
        uploaded = stacked.to(device, non_blocking=True)
        on_device.update(zip(keys, uploaded, strict=True))
    kept = sorted(on_device)
    frames = (
        torch.stack([on_device[i] for i in kept])
        if kept
        else torch.empty((0, size, size, 3), dtype=torch.uint8, device=device)
    )
    return GatheredBatch(frames, kept, sorted(unreadable), len(gpu), time.perf_counter() - t0)
