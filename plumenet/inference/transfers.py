"""Host <-> device transfers of the predictor: reusable pinned buffers, a side stream, one sync.

On CUDA, :class:`Transfers` keeps per thread (several work units may share one predictor)
two reusable pinned host buffers of ``batch_size`` frames and a side stream: a batch is
copied into a pinned buffer, sent with a non-blocking copy on the side stream, and the
compute stream waits for that copy only (so one unit's upload overlaps another unit's
compute). Outputs are copied back with non-blocking copies into pinned memory and read
after **one** synchronisation per batch (:meth:`Transfers.to_host`). Frames that are
already on the device (decoded there by :mod:`plumenet.inference.gpu_decode`) are used as
they are.

On CPU every step is the plain path (``torch.from_numpy``, ``.numpy()``): no pinned
memory, no streams, the same results.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Transfers"]


@dataclass
class _Slot:
    host: torch.Tensor  # pinned uint8 (batch_size, S, S, 3)
    done: torch.cuda.Event  # recorded after the upload that last read ``host``


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.slots: list[_Slot] = []
        self.next_slot = 0
        self.stream: torch.cuda.Stream | None = None


class Transfers:
    """Moves uint8 frame batches to ``device`` and results back (see the module docstring)."""

    #: Pinned input buffers per thread: one being uploaded while the next is filled.
    SLOTS = 2

    def __init__(self, device: torch.device, batch_size: int, frame_shape: tuple[int, ...]):
        self.device = device
        self.batch_size = int(batch_size)
        self.frame_shape = tuple(frame_shape)
        self.cuda = device.type == "cuda"
        self._state = _ThreadState()

    def _slot(self) -> _Slot:
        state = self._state
        if not state.slots:
            for _ in range(self.SLOTS):
                host = torch.empty(
                    (self.batch_size, *self.frame_shape), dtype=torch.uint8, pin_memory=True
                )
                state.slots.append(_Slot(host, torch.cuda.Event()))
            state.stream = torch.cuda.Stream(device=self.device)
        slot = state.slots[state.next_slot]
        state.next_slot = (state.next_slot + 1) % len(state.slots)
        slot.done.synchronize()  # the upload that last read this buffer has finished
        return slot

    def to_device(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(n, S, S, 3)`` uint8 (numpy, or a tensor anywhere) -> the same on the device.

        ``n`` may not exceed ``batch_size`` on CUDA (the pinned buffers' size).
        """
        if isinstance(batch, torch.Tensor):
            # "cuda" and "cuda:0" differ as devices: compare the type (to() moves to the index)
            if batch.device.type == self.device.type or not self.cuda:
                return batch.to(self.device)
            batch = batch.numpy()  # a host tensor: through the pinned buffers
        if not self.cuda:
            return torch.from_numpy(np.ascontiguousarray(batch))
        n = int(batch.shape[0])
        if n > self.batch_size:
            raise ValueError(f"batch of {n} frames exceeds the pinned buffers ({self.batch_size})")
        slot = self._slot()
        slot.host[:n].numpy()[...] = batch
        stream = self._state.stream
        assert stream is not None
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(stream):
            on_device = slot.host[:n].to(self.device, non_blocking=True)
            slot.done.record(stream)
        compute.wait_stream(stream)
        on_device.record_stream(compute)  # allocated on the side stream, used on compute
        return on_device

    def small_to_device(self, array: np.ndarray) -> torch.Tensor:
        """A small host array (e.g. frame sizes) -> the device, without a synchronisation."""
        t = torch.from_numpy(np.ascontiguousarray(array))
        if not self.cuda:
            return t
        return t.pin_memory().to(self.device, non_blocking=True)

    def to_host(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Device tensors -> numpy arrays, with one synchronisation for all of them on CUDA."""
        if not self.cuda:
            return {name: t.detach().cpu().numpy() for name, t in outputs.items()}
        pinned = {}
        for name, t in outputs.items():
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            host.copy_(t, non_blocking=True)
            pinned[name] = host
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(self.device))
        ready.synchronize()  # the one synchronisation of the batch
        return {name: host.numpy() for name, host in pinned.items()}
