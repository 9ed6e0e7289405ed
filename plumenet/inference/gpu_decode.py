"""Batched JPEG decode and resize on the GPU (nvJPEG through torchvision), Pillow as fallback.

On a CUDA worker the fetch threads hand over the *bytes* of plain JPEGs instead of decoding
them (:func:`gpu_decodable` is the routing rule, a header parse that needs no torch); the
work unit then decodes a whole batch at once with ``torchvision.io.decode_jpeg(...,
device="cuda")`` and resizes it on the GPU (:func:`decode_resize`), so the CPU cores no
longer cap throughput. Everything else stays on the Pillow path of
:mod:`plumenet.inference.decode`, per frame:

- not a JPEG, or a JPEG that is not 8-bit baseline/extended Huffman with 3 components
  (progressive, arithmetic-coded, lossless, 12-bit, CMYK/Adobe, grayscale);
- an EXIF orientation other than 1 (or an EXIF block we cannot parse): Pillow rotates;
- no end-of-image marker (truncated: Pillow reports ``"truncated"``);
- any frame nvJPEG fails on: it is decoded again by Pillow, which gives the reason when it
  is broken (status 2), so one bad file never fails a batch.

The resize matches :func:`~plumenet.inference.decode.load_frame`: Pillow's draft mode
(DCT scaling by 1/2, 1/4 or 1/8 when the short side is >= twice the target) is emulated by
average pooling with the same factor, then an antialiased bilinear resize to the square
(``F.interpolate(..., antialias=True)``, the same triangle filter as Pillow's
``BILINEAR`` with ``reducing_gap=None``), rounded to uint8. Agreement with Pillow is a
``gpu`` test (mean absolute pixel difference, class fractions).

torchvision is the optional ``gpu`` extra; nothing here imports it (or torch) at import
time, and :func:`gpu_decode_available` says whether the GPU path can run.
"""

from __future__ import annotations

import functools
import logging
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "GpuDecoded",
    "JpegHeader",
    "decode_resize",
    "draft_factor",
    "gpu_decodable",
    "gpu_decode_available",
    "read_jpeg_header",
    "resize_like_pillow",
]

#: SOF markers nvJPEG decodes on the GPU: baseline and extended sequential Huffman.
_GPU_SOF = {0xC0, 0xC1}
#: Every other start-of-frame marker (progressive, lossless, arithmetic, hierarchical).
_OTHER_SOF = {0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_EXIF_ORIENTATION_TAG = 0x0112
#: Frames resized at once (float32 copies of 1080p frames: 25 MB each).
RESIZE_CHUNK = 32


@dataclass(frozen=True)
class JpegHeader:
    """What the routing rule reads from a JPEG's markers."""

    width: int
    height: int
    components: int
    precision: int
    sof: int  # the start-of-frame marker byte (0xC0 baseline, 0xC2 progressive, ...)
    orientation: int | None  # EXIF orientation; None without EXIF; 0 when unparseable
    adobe: bool  # an Adobe APP14 segment (CMYK/YCCK or RGB-coded JPEGs)
    complete: bool  # ends with the end-of-image marker


def _exif_orientation(payload: bytes) -> int:
    """EXIF orientation from the TIFF block of an APP1 ``Exif`` payload (1: no tag; 0: broken)."""
    try:
        order = {b"II": "<", b"MM": ">"}[payload[:2]]
        (ifd,) = struct.unpack_from(order + "I", payload, 4)
        (count,) = struct.unpack_from(order + "H", payload, ifd)
        for i in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHI4s", payload, ifd + 2 + 12 * i)
            if tag == _EXIF_ORIENTATION_TAG:
                if kind != 3:  # SHORT
                    return 0
                return int(struct.unpack_from(order + "H", value)[0])
    except (KeyError, struct.error):
        return 0
    return 1


def read_jpeg_header(data: bytes) -> JpegHeader | None:
    """Parse the markers up to the start of scan; ``None`` when ``data`` is no parseable JPEG."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return None
    pos, orientation, adobe, frame = 2, None, False, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        body = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            return None
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
            orientation = _exif_orientation(body[6:])
        elif marker == 0xEE and body[:5] == b"Adobe":
            adobe = True
        elif marker in _GPU_SOF or marker in _OTHER_SOF:
            if len(body) < 6:
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", body)
            frame = (width, height, components, precision, marker)
        elif marker == 0xDA:  # start of scan: the header is over
            break
        pos += 2 + length
    if frame is None:
        return None
    width, height, components, precision, sof = frame
    complete = data.rstrip(b"\x00")[-2:] == b"\xff\xd9"
    return JpegHeader(width, height, components, precision, sof, orientation, adobe, complete)


def gpu_decodable(data: bytes) -> bool:
    """Whether nvJPEG decodes these bytes to the same frame as Pillow would (the routing rule)."""
    header = read_jpeg_header(data)
    return (
        header is not None
        and header.sof in _GPU_SOF
        and header.components == 3
        and header.precision == 8
        and not header.adobe
        and header.orientation in (None, 1)
        and header.complete
        and header.width > 0
        and header.height > 0
    )


def draft_factor(width: int, height: int, size: int) -> int:
    """The DCT scale Pillow's draft mode picks in :func:`~plumenet.inference.decode.decode_rgb`.

    1 unless the short side is >= ``2 * size``; then the largest of 2, 4, 8 that keeps
    both sides >= ``size`` (``Image.draft`` with a ``size x size`` request).
    """
    if min(width, height) < 2 * size:
        return 1
    scale = min(width // size, height // size)
    return next(f for f in (8, 4, 2, 1) if f <= scale)


logger = logging.getLogger(__name__)


@functools.cache
def gpu_decode_available() -> bool:
    """CUDA is there, torchvision (the ``gpu`` extra) imports with this torch, and its image
    extension loaded (torchvision only warns when it does not; every ``decode_jpeg`` would
    then fail and each batch would fall back to Pillow frame by frame)."""
    try:
        import torch  # noqa: PLC0415 - jobs.frames imports this module in the torch-free driver

        if not torch.cuda.is_available():
            return False
        import torchvision.io.image  # noqa: PLC0415 - optional gpu extra
    except (ImportError, RuntimeError, OSError):
        return False
    has_ops = getattr(torchvision.io.image, "_has_image_ops", None)  # private; may move
    if callable(has_ops) and not has_ops():
        logger.warning("torchvision's image extension did not load: JPEGs decode with Pillow")
        return False
    return True


@dataclass
class GpuDecoded:
    """A batch decoded on the GPU: ``frames`` (``n_ok x size x size x 3`` uint8, on the
    device) for the positions ``ok``; ``failed`` are positions nvJPEG could not decode
    (decode them with Pillow, which reports why when they are broken)."""

    frames: torch.Tensor
    ok: list[int]
    failed: list[int]


def resize_like_pillow(img: torch.Tensor, size: int) -> torch.Tensor:
    """``3 x H x W`` (or ``N x 3 x H x W``) uint8 on any device -> ``size x size x 3`` (or
    ``N x size x size x 3``) uint8, as Pillow's draft mode + BILINEAR resize in
    :func:`~plumenet.inference.decode.load_frame` (see the module docstring)."""
    import torch  # noqa: PLC0415 - jobs.frames imports this module in the torch-free driver
    import torch.nn.functional as F  # noqa: PLC0415 - as above

    single = img.dim() == 3
    h, w = int(img.shape[-2]), int(img.shape[-1])
    x = (img.unsqueeze(0) if single else img).float()
    factor = draft_factor(w, h, size)
    if factor > 1:
        x = F.avg_pool2d(x, factor, ceil_mode=True)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    out = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return out[0] if single else out


#: Per thread: its nvJPEG stream per CUDA device (see :func:`decode_resize`).
_THREAD_STREAMS = threading.local()
#: nvJPEG's first failure in this process is logged with its error (later ones are not).
_FAILURE_LOGGED = threading.Event()


def _decode_stream(device: torch.device) -> torch.cuda.Stream:
    """This thread's stream for decoding on ``device``, made on first use."""
    import torch  # noqa: PLC0415 - jobs.frames imports this module in the torch-free driver

    streams = getattr(_THREAD_STREAMS, "by_device", None)
    if streams is None:
        streams = _THREAD_STREAMS.by_device = {}
    if device not in streams:
        streams[device] = torch.cuda.Stream(device=device)
    return streams[device]


def _decode_all(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """One batched nvJPEG call; if it fails, each frame alone (``None``: still failed)."""
    from torchvision.io import ImageReadMode, decode_jpeg  # noqa: PLC0415 - optional gpu extra

    try:
        return list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))
    except RuntimeError as err:
        if not _FAILURE_LOGGED.is_set():
            _FAILURE_LOGGED.set()
            logger.warning(
                "nvJPEG failed on a batch of %d frames (%s); decoding them one by one, "
                "Pillow takes the ones that still fail (logged once per process)",
                len(encoded), str(err).splitlines()[0] if str(err) else type(err).__name__,
            )  # fmt: skip
    images: list[torch.Tensor | None] = []
    for t in encoded:
        try:
            images.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            images.append(None)
    return images


def decode_resize(datas: Sequence[bytes], size: int, device: str | torch.device) -> GpuDecoded:
    """Decode JPEG bytes (each :func:`gpu_decodable`) on ``device`` and resize to ``size``.

    One batched nvJPEG call; if it fails, each frame is tried alone and the ones that still
    fail are listed in ``failed``. Never raises for bad data.
    """
    import torch  # noqa: PLC0415 - jobs.frames imports this module in the torch-free driver

    encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    dev = torch.device(device)
    if dev.type == "cuda":
        # torchvision allocates the outputs on the current stream but decodes on a private
        # stream that does not wait for it, so memory that queued kernels of this (shared)
        # stream still read could be written over: decode on this thread's own stream, then
        # order the caller's stream after it and tie the outputs to the caller's stream.
        caller, decoding = torch.cuda.current_stream(dev), _decode_stream(dev)
        with torch.cuda.stream(decoding):
            images = _decode_all(encoded, dev)
        caller.wait_stream(decoding)
        for img in images:
            if img is not None:
                img.record_stream(caller)
    else:
        images = _decode_all(encoded, dev)
    failed = [
        i for i, img in enumerate(images) if img is None or img.dim() != 3 or img.shape[0] != 3
    ]
    ok = [i for i in range(len(images)) if i not in set(failed)]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i in ok:
        by_shape.setdefault(tuple(images[i].shape), []).append(i)  # type: ignore[union-attr]
    resized: dict[int, torch.Tensor] = {}
    for group in by_shape.values():  # one resize per frame size, in chunks (float memory)
        for start in range(0, len(group), RESIZE_CHUNK):
            part = group[start : start + RESIZE_CHUNK]
            out = resize_like_pillow(torch.stack([images[i] for i in part]), size)
            resized.update(zip(part, out, strict=True))
    stacked = (
        torch.stack([resized[i] for i in ok])
        if ok
        else torch.empty((0, size, size, 3), dtype=torch.uint8, device=device)
    )
    return GpuDecoded(stacked, ok, failed)
