"""Batched inference: uint8 frames in, class probabilities and fractions out.

Per frame the :class:`Predictor` returns

- ``probability``: softmax of the grid logits on the model's patch grid (37 x 37 at 518),
  quantized to uint8 as ``round(p * 254)``; 255 is reserved as the fill value, so
  ``p = q / 254`` (see :func:`dequantize_probability`);
- ``fraction``: the share of each class among the pixels of the argmax of the logits
  upsampled bilinearly to the input resolution, counted inside the ROI mask (all pixels
  when there is none); it sums to 1;
- ``brightness``: mean luminance (Rec. 601: 0.299 R + 0.587 G + 0.114 B) in 0-1, inside
  the ROI;
- ``usable``: ``False`` when the frame is (nearly) uniform — the standard deviation of
  its luminance inside the ROI is below :data:`USABLE_MIN_STD` (0.01, i.e. 2.5 grey
  levels): blank, black, white or single-colour frames from a dead or covered camera.

Frames move to the device as uint8 (pinned memory and non-blocking copies on CUDA) and
are normalised there. On CUDA, ``amp="auto"`` runs under bf16 autocast where supported
(else fp16); on CPU there is no autocast unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from plumenet import encoding
from plumenet.classes import MODEL_CLASSES
from plumenet.inference.decode import resize_frame, to_rgb
from plumenet.model.weights import LoadedModel

if TYPE_CHECKING:
    from plumenet.anomaly.padim import AnomalyScorer

__all__ = [
    "FILL_VALUE",
    "PROBABILITY_SCALE",
    "USABLE_MIN_STD",
    "FramePredictions",
    "Predictor",
    "dequantize_probability",
    "quantize_probability",
]

#: The store's encoding (plumenet.encoding): probabilities as ``round(p * 254)``, 255 = no value.
PROBABILITY_SCALE: int = encoding.PROBABILITY_SCALE
FILL_VALUE: int = encoding.PROBABILITY_FILL
#: A frame whose luminance standard deviation (0-1 scale) is below this is unusable.
USABLE_MIN_STD: float = 0.01

_LUMA = (0.299, 0.587, 0.114)

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
        )


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    """Runs a :class:`~plumenet.model.weights.LoadedModel` over uint8 frame batches.

    ``roi``: optional H x W boolean mask (True = pixel counts) at any resolution; it is
    resized (nearest) to the model input size and applied to fractions, brightness and
    the usability test. ``compile=True`` wraps the forward pass in ``torch.compile``
    (first batch slow; then faster on CUDA).
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
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.loaded = loaded
        self.device = _resolve_device(device)
        self.batch_size = int(batch_size)
        self.amp_dtype = _resolve_amp(amp, self.device)
        self.channels_last = bool(channels_last)
        model = loaded.model.to(self.device).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # torch.compile of the forward pass (CUDA, fixed input size): worth it for long runs.
        self._outputs_fn = (
            torch.compile(model.forward_outputs) if compile else model.forward_outputs
        )
        self._grid_fn = torch.compile(model.forward_grid) if compile else model.forward_grid
        size = self.input_size
        self._roi: torch.Tensor | None = None
        if roi is not None:
            mask = np.asarray(roi).astype(bool)
            if mask.ndim != 2:
                raise ValueError(f"roi must be a 2-D mask, got shape {mask.shape}")
            if not mask.any():
                raise ValueError("roi mask selects no pixel")
            if mask.shape != (size, size):
                img = Image.fromarray(mask.astype(np.uint8) * 255, "L")
                mask = np.asarray(img.resize((size, size), Image.Resampling.NEAREST)) > 127
                if not mask.any():
                    raise ValueError("roi mask selects no pixel at the model input size")
            self._roi = torch.from_numpy(mask).to(self.device)
        self._luma = torch.tensor(_LUMA, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

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

    # ------------------------------------------------------------------ internals
    def _check(self, frames: np.ndarray) -> np.ndarray:
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

    def _to_device(self, batch: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        else:
            t = t.to(self.device)
        return t.permute(0, 3, 1, 2)  # N x 3 x H x W, channels-last strides

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def _forward(
        self, x_u8: torch.Tensor, scorer: AnomalyScorer | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
        """Grid and upsampled logits; with a ``scorer``, its anomaly scores from the same
        backbone pass (the scorer's layers and the head's input from one ``forward_layers``)."""
        x = self.model.normalize(x_u8)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if scorer is None:
            with self._autocast():
                grid, full = self._outputs_fn(x)
            return grid.float(), full, None
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
            return self._grid_fn(x).float()

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
        scorer: AnomalyScorer | None = None,
    ) -> FramePredictions:
        """``(N, S, S, 3)`` uint8 frames -> :class:`FramePredictions`.

        With an anomaly ``scorer`` (plumenet.anomaly.padim), ``anomaly`` holds its per-frame scores,
        computed from the same backbone pass as the segmentation.
        """
        arr = self._check(frames)
        c, g = self.num_classes, self.grid_size
        parts = []
        for batch in self._batches(arr):
            parts.append(self._predict_batch(batch, return_class_map, scorer))
        if not parts:
            return FramePredictions(
                probability=np.zeros((0, c, g, g), np.uint8),
                fraction=np.zeros((0, c), np.float32),
                brightness=np.zeros((0,), np.float32),
                usable=np.zeros((0,), bool),
                class_map=np.zeros((0, self.input_size, self.input_size), np.uint8)
                if return_class_map
                else None,
            )
        return FramePredictions.concatenate(parts)

    def _predict_batch(
        self, batch: np.ndarray, return_class_map: bool, scorer: AnomalyScorer | None = None
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
        if self._roi is not None:
            flat = flat[:, self._roi]
        counts = torch.bincount(flat.reshape(-1), minlength=n * c).view(n, c).float()
        fraction = counts / counts.sum(dim=1, keepdim=True)
        luma = (x_u8.float() * self._luma).sum(dim=1) / 255.0  # N x S x S
        luma = luma[:, self._roi] if self._roi is not None else luma.reshape(n, -1)
        brightness = luma.mean(dim=1)
        std = luma.std(dim=1, unbiased=False)
        usable = std >= USABLE_MIN_STD
        return FramePredictions(
            probability=q.cpu().numpy(),
            fraction=fraction.cpu().numpy().astype(np.float32),
            brightness=brightness.cpu().numpy().astype(np.float32),
            usable=usable.cpu().numpy().astype(bool),
            class_map=labels.to(torch.uint8).cpu().numpy() if return_class_map else None,
            anomaly=scores,
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
