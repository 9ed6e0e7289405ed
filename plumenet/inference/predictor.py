"""Batched inference: uint8 frames in, class probabilities and fractions out.

Per frame the :class:`Predictor` returns

- ``probability``: softmax of the grid logits on the model's patch grid (37 x 37 at 518),
  quantized to uint8 as ``round(p * 254)``; 255 is reserved as the fill value, so
  ``p = q / 254`` (see :func:`dequantize_probability`);
- ``fraction``: the share of each class among the pixels of the argmax of the logits
  upsampled bilinearly to the input resolution, counted inside the ROI mask (all pixels
  when there is none); it sums to 1;
- ``brightness`` and ``usable``: the frame-quality rule of :mod:`plumenet.inference.quality`
  (mean Rec. 601 luminance inside the ROI; ``False`` when its standard deviation is below
  :data:`~plumenet.inference.quality.USABLE_MIN_STD`: blank, black, white or single-colour
  frames from a dead or covered camera).

Frames move to the device as uint8 (pinned memory and non-blocking copies on CUDA) and
are normalised there. On CUDA, ``amp="auto"`` runs under bf16 autocast where supported
(else fp16); on CPU there is no autocast unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from plumenet import encoding
from plumenet.classes import MODEL_CLASSES
from plumenet.inference.decode import resize_frame, to_rgb
from plumenet.inference.geometry import PLUME_KINDS, plume_geometry
from plumenet.inference.quality import frame_quality, roi_mask
from plumenet.inference.transfers import Transfers
from plumenet.model.device import resolve_device
from plumenet.model.loaded import LoadedModel
from plumenet.model.network import set_attention

__all__ = [
    "FILL_VALUE",
    "PROBABILITY_SCALE",
    "FeatureScorer",
    "FramePredictions",
    "Predictor",
    "dequantize_probability",
    "quantize_probability",
]

#: The store's encoding (plumenet.encoding): probabilities as ``round(p * 254)``, 255 = no value.
PROBABILITY_SCALE: int = encoding.PROBABILITY_SCALE
FILL_VALUE: int = encoding.PROBABILITY_FILL

dequantize_probability = encoding.dequantize_probability


def quantize_probability(p: np.ndarray | torch.Tensor) -> np.ndarray:
    """Probabilities in 0-1 (array or tensor) -> the store's uint8; NaN -> 255."""
    arr = p.detach().float().cpu().numpy() if isinstance(p, torch.Tensor) else p
    return encoding.quantize_probability(arr)


@dataclass
class FramePredictions:
    """Results for N frames (numpy arrays; see the module docstring for definitions)."""

    probability: np.ndarray  # uint8 (N, C, h, w), round(p * 254)
    fraction: np.ndarray  # float32 (N, C), sums to 1
    brightness: np.ndarray  # float32 (N,)
    usable: np.ndarray  # bool (N,)
    class_map: np.ndarray | None = None  # uint8 (N, S, S) argmax, when asked for
    anomaly: np.ndarray | None = None  # float32 (N,) PaDiM scores, when a scorer is given
    # Plume geometry (plumenet.inference.geometry), float32 (N, len(PLUME_KINDS)), in the
    # original frame's pixels (the model input's when no frame sizes were given); NaN: none.
    plume_top_row: np.ndarray | None = None
    plume_center_col: np.ndarray | None = None
    plume_width: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.fraction.shape[0])

    @property
    def classes(self) -> tuple[str, ...]:
        return MODEL_CLASSES[: self.fraction.shape[1]]

    def probability_float(self) -> np.ndarray:
        """Dequantized probabilities, float32 (N, C, h, w)."""
        return dequantize_probability(self.probability)

    @classmethod
    def concatenate(cls, parts: Sequence[FramePredictions]) -> FramePredictions:
        maps = [p.class_map for p in parts]
        scores = [p.anomaly for p in parts]
        return cls(
            probability=np.concatenate([p.probability for p in parts]),
            fraction=np.concatenate([p.fraction for p in parts]),
            brightness=np.concatenate([p.brightness for p in parts]),
            usable=np.concatenate([p.usable for p in parts]),
            class_map=None if any(m is None for m in maps) else np.concatenate(maps),
            anomaly=None if any(a is None for a in scores) else np.concatenate(scores),
            **{name: _concat_optional([getattr(p, name) for p in parts]) for name in PLUME_FIELDS},
        )


#: The plume-geometry fields of :class:`FramePredictions`.
PLUME_FIELDS: tuple[str, ...] = ("plume_top_row", "plume_center_col", "plume_width")


def _concat_optional(values: list[np.ndarray | None]) -> np.ndarray | None:
    return None if any(v is None for v in values) else np.concatenate(values)  # type: ignore[arg-type]


class FeatureScorer(Protocol):
    """What :meth:`Predictor.predict` calls on an anomaly ``scorer``.

    It names the backbone layers it reads and scores their grids; the predictor feeds it
    from the same backbone pass as the segmentation. Implemented by
    :class:`plumenet.anomaly.scorer.AnomalyScorer`.
    """

    @property
    def layers(self) -> tuple[int, ...]:
        """Backbone layers :meth:`score_features` expects, in order."""
        ...

    def score_features(self, layer_grids: Sequence[torch.Tensor]) -> np.ndarray:
        """Grids of :attr:`layers` (``B x D x h x w`` each) -> float32 ``(B,)`` scores."""
        ...


def _resolve_amp(amp: str | None, device: torch.device) -> torch.dtype | None:
    if amp is None:
        return None
    key = str(amp).lower()
    if key in {"none", "off", "false", "fp32", "float32", "no"}:
        return None
    if key == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if key in {"bf16", "bfloat16"}:
        return torch.bfloat16
    if key in {"fp16", "float16", "half"}:
        return torch.float16
    raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or None, got {amp!r}")


class Predictor:
    """Runs a :class:`~plumenet.model.loaded.LoadedModel` over uint8 frame batches.

    ``roi``: optional H x W boolean mask (True = pixel counts) at any resolution; it is
    resized (nearest) to the model input size and applied to fractions, brightness and
    the usability test. ``compile=True`` wraps the forward pass in ``torch.compile``
    (``dynamic=False``; the warm-up compile runs here, once per predictor, i.e. once per
    worker, and partial batches are padded to ``batch_size`` so nothing recompiles).
    ``attention`` selects the backbone's attention kernel (``"sdpa"``, the default, or
    ``"eager"``; see :func:`~plumenet.model.network.set_attention`). Transfers (pinned
    buffers, side stream, one sync per batch on CUDA) are
    :class:`~plumenet.inference.transfers.Transfers`.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 16,
        amp: str | None = "auto",
        channels_last: bool = True,
        roi: np.ndarray | None = None,
        compile: bool = False,
        attention: str = "sdpa",
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.loaded = loaded
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.amp_dtype = _resolve_amp(amp, self.device)
        self.channels_last = bool(channels_last)
        model = loaded.model.to(self.device).eval()
        set_attention(model, attention)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # torch.compile of the forward pass (CUDA, fixed input size): worth it for long runs.
        self.compiled = bool(compile)
        self._outputs_fn = (
            torch.compile(model.forward_outputs, dynamic=False)
            if compile
            else model.forward_outputs
        )
        self._grid_fn = (
            torch.compile(model.forward_grid, dynamic=False) if compile else model.forward_grid
        )
        size = self.input_size
        self._transfers = Transfers(self.device, self.batch_size, (size, size, 3))
        self._roi: torch.Tensor | None = None
        if roi is not None:
            mask = roi_mask(roi, size, size, where="at the model input size")
            self._roi = torch.from_numpy(mask).to(self.device)
        self._roi_index = (
            None
            if self._roi is None
            else torch.from_numpy(np.flatnonzero(self._roi.cpu().numpy())).to(self.device)
        )
        if compile:
            self.warm_up()

    # ------------------------------------------------------------------ properties
    @property
    def input_size(self) -> int:
        return int(self.loaded.model.config.input_size)

    @property
    def num_classes(self) -> int:
        return int(self.loaded.model.config.num_classes)

    @property
    def grid_size(self) -> int:
        return self.input_size // self.loaded.model.config.patch_size

    @property
    def roi(self) -> np.ndarray | None:
        """The ROI mask at the model input size (``None``: every pixel counts)."""
        return None if self._roi is None else self._roi.cpu().numpy()

    # ------------------------------------------------------------------ internals
    def _check(self, frames: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(frames, torch.Tensor):  # e.g. decoded on the GPU (gpu_decode)
            s = self.input_size
            t = frames[None] if frames.dim() == 3 else frames
            if t.dim() != 4 or tuple(t.shape[1:]) != (s, s, 3) or t.dtype != torch.uint8:
                raise ValueError(
                    f"frames must be (N, {s}, {s}, 3) uint8, got {tuple(t.shape)} {t.dtype}"
                )
            return t
        arr = np.asarray(frames)
        if arr.ndim == 3:
            arr = arr[None]
        s = self.input_size
        if arr.ndim != 4 or arr.shape[1:] != (s, s, 3):
            raise ValueError(f"frames must be (N, {s}, {s}, 3) uint8, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {arr.dtype}")
        return arr

    def _batches(self, arr: np.ndarray) -> Iterator[np.ndarray]:
        for start in range(0, arr.shape[0], self.batch_size):
            yield arr[start : start + self.batch_size]

    def _to_device(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = self._transfers.to_device(batch)
        return t.permute(0, 3, 1, 2)  # N x 3 x H x W, channels-last strides

    def _padded(self, x_u8: torch.Tensor) -> torch.Tensor:
        """A compiled forward sees only full batches (no recompile for the last one)."""
        n = x_u8.shape[0]
        if not self.compiled or n >= self.batch_size:
            return x_u8
        pad = x_u8.new_zeros((self.batch_size - n, *x_u8.shape[1:]))
        return torch.cat([x_u8, pad]).contiguous(memory_format=torch.channels_last)

    def warm_up(self) -> None:
        """Run one full batch so a compiled forward pays its compile now, not in a unit."""
        s = self.input_size
        self.predict(np.zeros((self.batch_size, s, s, 3), np.uint8))

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def _forward(
        self, x_u8: torch.Tensor, scorer: FeatureScorer | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
        """Grid and upsampled logits; with a ``scorer``, its anomaly scores from the same
        backbone pass (the scorer's layers and the head's input from one ``forward_layers``)."""
        x = self.model.normalize(x_u8)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if scorer is None:
            n = x.shape[0]
            with self._autocast():
                grid, full = self._outputs_fn(self._padded(x))
            return grid[:n].float(), full[:n], None
        backbone = self.model.backbone
        with self._autocast():
            grids = backbone.forward_layers(x, [*scorer.layers, backbone.num_layers])
            grid = self.model.head(grids[-1]).float()
        full = F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)
        scores = scorer.score_features([g.float() for g in grids[:-1]])
        return grid, full, scores

    def _forward_grid(self, x_u8: torch.Tensor) -> torch.Tensor:
        x = self.model.normalize(x_u8)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return self._grid_fn(self._padded(x))[: x.shape[0]].float()

    # ------------------------------------------------------------------ public
    @torch.inference_mode()
    def grid_logits(self, frames: np.ndarray) -> torch.Tensor:
        """Float32 grid logits (N, C, h, w) on the CPU, for tiling and analysis."""
        arr = self._check(frames)
        out = []
        for batch in self._batches(arr):
            out.append(self._forward_grid(self._to_device(batch)).cpu())
        if not out:
            g = self.grid_size
            return torch.empty(0, self.num_classes, g, g)
        return torch.cat(out)

    @torch.inference_mode()
    def predict(
        self,
        frames: np.ndarray,
        *,
        return_class_map: bool = False,
        scorer: FeatureScorer | None = None,
        frame_sizes: np.ndarray | None = None,
    ) -> FramePredictions:
        """``(N, S, S, 3)`` uint8 frames -> :class:`FramePredictions`.

        With an anomaly ``scorer`` (e.g. :class:`plumenet.anomaly.scorer.AnomalyScorer`),
        ``anomaly`` holds its per-frame scores, computed from the same backbone pass as the
        segmentation. ``frame_sizes``: ``(N, 2)`` original ``(height, width)`` of the frames,
        so the plume geometry is reported in their pixels.
        """
        arr = self._check(frames)
        c, g = self.num_classes, self.grid_size
        sizes = None if frame_sizes is None else np.asarray(frame_sizes, dtype=np.float32)
        if sizes is not None and sizes.shape != (arr.shape[0], 2):
            raise ValueError(f"frame_sizes must be ({arr.shape[0]}, 2), got {sizes.shape}")
        parts = []
        for k, batch in enumerate(self._batches(arr)):
            start = k * self.batch_size
            rows = None if sizes is None else sizes[start : start + len(batch)]
            parts.append(self._predict_batch(batch, return_class_map, scorer, rows))
        if not parts:
            return FramePredictions(
                probability=np.zeros((0, c, g, g), np.uint8),
                fraction=np.zeros((0, c), np.float32),
                brightness=np.zeros((0,), np.float32),
                usable=np.zeros((0,), bool),
                class_map=np.zeros((0, self.input_size, self.input_size), np.uint8)
                if return_class_map
                else None,
                **{f: np.zeros((0, len(PLUME_KINDS)), np.float32) for f in PLUME_FIELDS},
            )
        return FramePredictions.concatenate(parts)

    def _predict_batch(
        self,
        batch: np.ndarray,
        return_class_map: bool,
        scorer: FeatureScorer | None = None,
        frame_sizes: np.ndarray | None = None,
    ) -> FramePredictions:
        x_u8 = self._to_device(batch)
        n = x_u8.shape[0]
        c = self.num_classes
        grid, full, scores = self._forward(x_u8, scorer)
        prob = torch.softmax(grid, dim=1)
        q = torch.round(prob * PROBABILITY_SCALE).clamp_(0, PROBABILITY_SCALE).to(torch.uint8)
        labels = full.argmax(dim=1)  # N x S x S
        offsets = torch.arange(n, device=labels.device).view(n, 1, 1) * c
        flat = labels + offsets
        flat = flat.reshape(n, -1)
        if self._roi_index is not None:
            flat = flat[:, self._roi_index]  # an index, not a mask: no device sync
        flat = flat.reshape(-1)
        # scatter_add, not bincount: bincount reads its maximum back (a sync per batch)
        ones = torch.ones(flat.shape, dtype=torch.float32, device=flat.device)
        counts = torch.zeros(n * c, device=flat.device).scatter_add_(0, flat, ones).view(n, c)
        fraction = counts / counts.sum(dim=1, keepdim=True)
        brightness, usable = frame_quality(x_u8, self._roi)
        sizes = None if frame_sizes is None else self._transfers.small_to_device(frame_sizes)
        plume = plume_geometry(labels, sizes, roi=self._roi)
        outputs = {
            "probability": q,
            "fraction": fraction.float(),
            "brightness": brightness.float(),
            "usable": usable.bool(),
            "plume_top_row": plume.top_row,
            "plume_center_col": plume.center_col,
            "plume_width": plume.width,
        }
        if return_class_map:
            outputs["class_map"] = labels.to(torch.uint8)
        host = self._transfers.to_host(outputs)  # one synchronisation on CUDA
        return FramePredictions(
            probability=host["probability"],
            fraction=host["fraction"],
            brightness=host["brightness"],
            usable=host["usable"],
            class_map=host.get("class_map"),
            anomaly=scores,
            plume_top_row=host["plume_top_row"],
            plume_center_col=host["plume_center_col"],
            plume_width=host["plume_width"],
        )

    def predict_images(
        self, images: Sequence[Image.Image], *, return_class_map: bool = False
    ) -> FramePredictions:
        """Convenience: PIL images (any mode/size) -> resized to the input -> :meth:`predict`."""
        size = self.input_size
        if not images:
            return self.predict(np.zeros((0, size, size, 3), np.uint8))
        frames = np.stack([resize_frame(to_rgb(img), size) for img in images])
        return self.predict(frames, return_class_map=return_class_map)
