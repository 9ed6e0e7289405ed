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
  (``Image.draft``), never below ``target_size`` on either side.

Frames are resized to a square (aspect ratio is not kept), as the model was trained.
"""

from __future__ import annotations

import io
import logging
import struct
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from plumenet.errors import UnreadableImageError

if TYPE_CHECKING:
    import torch

__all__ = ["decode_rgb", "frame_to_tensor", "load_frame", "resize_frame", "to_rgb"]

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
    except UnidentifiedImageError as err:
        raise UnreadableImageError("not an image: unrecognised format", source) from err
    except Image.DecompressionBombError as err:
        raise UnreadableImageError(f"too large: {err}", source) from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        raise UnreadableImageError(_reason_for(err), source) from err
    try:
        oriented = ImageOps.exif_transpose(img)
        if oriented is not None:
            img = oriented
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
    import torch

    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
