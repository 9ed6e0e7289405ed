"""Decode webcam frames and prepare them for the model.

Worker threads call :func:`load_frame` (bytes -> ``size x size x 3`` uint8); the batched
tensors are built with :func:`frame_to_tensor` and normalised on the device by the
predictor, so the host only moves uint8 data.

Decoding rules (:func:`decode_rgb`):

- EXIF orientation is applied (``ImageOps.exif_transpose``); a broken EXIF block is
  ignored, not fatal.
- Every mode becomes RGB. Alpha (``LA``, ``RGBA``, ``PA``, ``P`` with transparency) is
  composited over **black**: fully transparent pixels become black, as if the frame had
  no signal there. 16-bit and 32-bit integer modes (``I;16*``, ``I``) are scaled to 8 bit
  (``v / 257`` for 16-bit data, by the maximum otherwise); float (``F``) frames are
  taken as 0-1 when their maximum is <= 1, else as 0-255.
- Truncated, empty and non-image bytes raise
  :class:`~plumenet.errors.UnreadableImageError` with ``reason`` ``"empty file"``,
  ``"truncated"``, ``"not an image: ..."`` or ``"corrupt: ..."``. Pixel data is loaded
  fully (``ImageFile.LOAD_TRUNCATED_IMAGES`` is forced off), so a cut JPEG is detected.
- With ``target_size``, large JPEGs are decoded at a reduced DCT scale
  (``Image.draft``), never below ``target_size`` on either side; any other frame at least
  ``REDUCE_AT`` times the target on its short side is box-reduced right after loading
  (``Image.reduce``), so only one full-resolution copy ever exists.
- Memory: :func:`decode_cost` estimates a decode's peak bytes from the header alone, and
  :class:`DecodeBudget` lets a worker run concurrent decodes only while their estimates fit
  its budget (a decode larger than the whole budget runs alone).

Frames are resized to a square (aspect ratio is not kept), as the model was trained.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from plumenet.errors import UnreadableImageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DecodeBudget",
    "decode_cost",
    "decode_rgb",
    "frame_to_tensor",
    "load_frame",
    "original_size",
    "resize_frame",
    "to_rgb",
]

log = logging.getLogger(__name__)

_ALPHA_MODES = {"LA", "La", "RGBA", "RGBa", "PA"}


def _to_uint8_array(img: Image.Image) -> np.ndarray:
    """High-bit-depth single-channel image -> uint8 array."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(arr.max()) if arr.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        return np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    arr = arr.astype(np.int64)
    if img.mode.startswith("I;16") or (arr.size and arr.min() >= 0 and arr.max() <= 65535):
        if img.mode.startswith("I;16") or (arr.size and arr.max() > 255):
            return ((np.clip(arr, 0, 65535) + 128) // 257).astype(np.uint8)
        return np.clip(arr, 0, 255).astype(np.uint8)
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if hi == lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return ((arr - lo) * 255 // (hi - lo)).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB (alpha composited over black; 16-bit scaled to 8-bit)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        arr = np.asarray(rgba).astype(np.uint16)
        rgb = (arr[..., :3] * arr[..., 3:4] + 127) // 255
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    if mode in {"I", "F"} or mode.startswith("I;16"):
        return Image.fromarray(_to_uint8_array(img), "L").convert("RGB")
    return img.convert("RGB")


def _reason_for(err: BaseException) -> str:
    text = str(err).strip() or err.__class__.__name__
    low = text.lower()
    if isinstance(err, EOFError) or "truncated" in low or "premature end" in low:
        return "truncated"
    return f"corrupt: {text.splitlines()[0]}"


#: A non-JPEG frame this many times the target on its short side is box-reduced on load.
REDUCE_AT = 4
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "I", "F", "CMYK"}
#: Peak bytes per source pixel, measured on 3000 x 3000 PNGs (peak RSS, docs/pipeline.md):
#: reduced on load RGB 5, RGBA 9, L 1.5; at full resolution RGB and L 10, RGBA 29.
_BYTES_PER_PIXEL_REDUCED = {"L": 2}
_BYTES_PER_PIXEL_FULL = {"L": 12, "RGB": 12, "P": 12, "YCbCr": 12}
_DEFAULT_REDUCED, _DEFAULT_FULL = 10, 32


def _reduced(img: Image.Image, target_size: int | None) -> Image.Image:
    """Box-reduce a frame far larger than ``target_size`` (short side stays >= target)."""
    if not target_size or img.mode not in _REDUCIBLE_MODES:
        return img
    factor = min(img.size) // target_size
    if factor < REDUCE_AT:
        return img
    return img.reduce(factor // 2)


def decode_cost(data: bytes, target_size: int | None = None) -> int:
    """Estimated peak bytes of decoding ``data``, from its header only (0 if unreadable).

    JPEGs decode at their draft scale; other frames far larger than ``target_size`` are
    reduced right after loading, so one full-resolution buffer is the peak.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            fmt, mode = img.format, img.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error):
        return 0
    except Image.DecompressionBombError:
        return 0
    if target_size and fmt == "JPEG" and min(w, h) >= 2 * target_size:
        scale = 1
        while scale < 8 and min(w, h) // (2 * scale) >= target_size:
            scale *= 2
        w, h = -(-w // scale), -(-h // scale)
    reduces = bool(target_size) and mode in _REDUCIBLE_MODES and min(w, h) >= REDUCE_AT * (
        target_size or 1
    )
    if reduces:
        return w * h * _BYTES_PER_PIXEL_REDUCED.get(mode, _DEFAULT_REDUCED)
    return w * h * _BYTES_PER_PIXEL_FULL.get(mode, _DEFAULT_FULL)


class DecodeBudget:
    """A counting semaphore on estimated decode bytes, shared by a worker's fetch threads.

    A decode waits until its estimate fits beside those running; one larger than the whole
    budget waits until nothing else runs, then runs alone (never refused, never starved of
    its turn by smaller ones queued after it).
    """

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError(f"decode budget must be positive, got {limit_bytes}")
        self.limit_bytes = limit_bytes
        self.in_use = 0
        self.peak = 0
        self._cond = threading.Condition()
        self._waiting = 0

    @contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        """Run the ``with`` block once ``cost`` bytes fit in the budget."""
        cost = max(0, int(cost))
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(
                lambda: self.in_use == 0 or self.in_use + cost <= self.limit_bytes
            )
            self._waiting -= 1
            self.in_use += cost
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= cost
                self._cond.notify_all()


def decode_rgb(
    data: bytes, *, source: str | None = None, target_size: int | None = None
) -> Image.Image:
    """Decode image bytes to an RGB ``PIL.Image`` (EXIF orientation applied).

    ``target_size`` lets large JPEGs decode at 1/2, 1/4 or 1/8 scale while both sides
    stay >= ``target_size`` (much faster for 1080p+ webcam frames). Raises
    :class:`~plumenet.errors.UnreadableImageError` for empty, truncated or non-image data.
    """
    if data is None or len(data) == 0:
        raise UnreadableImageError("empty file", source)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone enabled partial loading globally; we need truncation to be an error.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img = Image.open(io.BytesIO(data))
        if target_size and img.format == "JPEG":
            w, h = img.size
            if min(w, h) >= 2 * target_size:
                img.draft("RGB", (target_size, target_size))
        img.load()
        img = _reduced(img, target_size)
    except UnidentifiedImageError as err:
        raise UnreadableImageError("not an image: unrecognised format", source) from err
    except Image.DecompressionBombError as err:
        raise UnreadableImageError(f"too large: {err}", source) from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        raise UnreadableImageError(_reason_for(err), source) from err
    try:
        # in place: no second full-size copy of a frame without an orientation tag
        ImageOps.exif_transpose(img, in_place=True)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError) as err:
        log.debug("ignoring unreadable EXIF in %s: %s", source or "image", err)
    return to_rgb(img)


def resize_frame(img: Image.Image, size: int) -> np.ndarray:
    """RGB image -> ``size x size x 3`` uint8 (antialiased bilinear; aspect not kept)."""
    if img.mode != "RGB":
        img = to_rgb(img)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.array(img, dtype=np.uint8)


def load_frame(data: bytes, size: int = 518, *, source: str | None = None) -> np.ndarray:
    """Bytes -> ``(size, size, 3)`` uint8 RGB frame; what pipeline worker threads call."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return resize_frame(decode_rgb(data, source=source, target_size=size), size)


def frame_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` (or ``(H, W, 3)``) uint8 -> torch uint8 ``N x 3 x H x W``.

    The result is a channels-last view of the same memory (no copy, no normalisation).
    """
    import torch  # noqa: PLC0415 - the Prefect/Dask driver imports decode (via jobs.frames)

    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)


def original_size(data: bytes) -> tuple[int, int] | None:
    """A frame's ``(height, width)`` as decoded (EXIF rotation applied), from its header
    only; ``None`` when the header cannot be read. Plume geometry is reported in these
    pixels although the model sees the frame resized."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error):
        return None
    except Image.DecompressionBombError:
        return None
    if orientation in _EXIF_SWAPS_AXES:
        width, height = height, width
    return height, width


#: The EXIF orientation tag, and its values that rotate the frame by 90 degrees.
_EXIF_ORIENTATION = 0x0112
_EXIF_SWAPS_AXES = frozenset({5, 6, 7, 8})
