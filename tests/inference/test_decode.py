"""Decoding: every mode to RGB, EXIF orientation, broken bytes, draft decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from plumenet.errors import UnreadableImageError
from plumenet.inference.decode import decode_rgb, frame_to_tensor, load_frame


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _noise_jpeg(w: int, h: int, seed: int = 0, **kwargs) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return _encode(Image.fromarray(arr), "JPEG", quality=90, **kwargs)


def _modes() -> list[tuple[str, bytes, tuple[int, int, int]]]:
    """(label, encoded bytes, expected RGB of pixel (0, 0))."""
    cases = []
    cases.append(("L", _encode(Image.new("L", (20, 10), 77), "PNG"), (77, 77, 77)))
    cases.append(("1", _encode(Image.new("1", (20, 10), 1), "PNG"), (255, 255, 255)))
    # LA: half-transparent grey 200 over black -> 100
    cases.append(("LA", _encode(Image.new("LA", (20, 10), (200, 128)), "PNG"), (100, 100, 100)))
    pal = Image.new("P", (20, 10), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    cases.append(("P", _encode(pal, "PNG"), (10, 200, 30)))
    pal_t = pal.copy()
    pal_t.info["transparency"] = 1
    cases.append(("P+transparency", _encode(pal_t, "PNG", transparency=1), (0, 0, 0)))
    cases.append(
        ("RGBA", _encode(Image.new("RGBA", (20, 10), (200, 100, 50, 255)), "PNG"), (200, 100, 50))
    )
    cases.append(
        (
            "RGBA-transparent",
            _encode(Image.new("RGBA", (20, 10), (200, 100, 50, 0)), "PNG"),
            (0, 0, 0),
        )
    )
    cmyk = Image.new("CMYK", (20, 10), (0, 0, 0, 0))
    cases.append(("CMYK-tiff", _encode(cmyk, "TIFF"), (255, 255, 255)))
    cases.append(("CMYK-jpeg", _encode(cmyk, "JPEG", quality=95), (255, 255, 255)))
    arr16 = np.full((10, 20), 32896, dtype=np.uint16)  # 32896 / 257 = 128
    cases.append(("I;16-png", _encode(Image.fromarray(arr16), "PNG"), (128, 128, 128)))
    cases.append(("I;16-tiff", _encode(Image.fromarray(arr16), "TIFF"), (128, 128, 128)))
    arr_f = np.full((10, 20), 0.5, dtype=np.float32)
    cases.append(("F-tiff", _encode(Image.fromarray(arr_f), "TIFF"), (128, 128, 128)))
    cases.append(
        (
            "RGB-webp",
            _encode(Image.new("RGB", (20, 10), (9, 99, 199)), "WEBP", lossless=True),
            (9, 99, 199),
        )
    )
    return cases


@pytest.mark.parametrize(("label", "data", "expected"), _modes(), ids=[c[0] for c in _modes()])
def test_every_mode_decodes_to_rgb(label, data, expected):
    img = decode_rgb(data, source=label)
    assert img.mode == "RGB"
    assert img.size == (20, 10)
    got = np.asarray(img)[0, 0]
    np.testing.assert_allclose(got, expected, atol=2, err_msg=label)


def test_sixteen_bit_full_range_scaled():
    arr = np.array([[0, 257, 65535, 1000]], dtype=np.uint16)
    img = decode_rgb(_encode(Image.fromarray(arr), "PNG"))
    np.testing.assert_array_equal(np.asarray(img)[0, :, 0], [0, 1, 255, 4])


def test_exif_orientation_applied():
    img = Image.new("RGB", (60, 40), (10, 20, 30))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    data = _encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    assert Image.open(io.BytesIO(data)).size == (60, 40)
    out = decode_rgb(data)
    assert out.size == (40, 60)
    # the stored top-left corner ends up top-right after a 90 degree clockwise turn
    assert np.asarray(out)[0, -1].mean() > 200
    assert np.asarray(out)[0, 0].mean() < 100


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_is_ignored():
    img = Image.new("RGB", (30, 20), (10, 20, 30))
    data = _encode(img, "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\xff")
    assert decode_rgb(data).size == (30, 20)


@pytest.mark.parametrize("cut", [0.2, 0.6, 0.95])
def test_truncated_jpeg_detected(cut):
    data = _noise_jpeg(300, 200)
    with pytest.raises(UnreadableImageError, match="truncated") as info:
        decode_rgb(data[: int(len(data) * cut)], source="cam/frame.jpg")
    assert info.value.reason == "truncated"
    assert info.value.source == "cam/frame.jpg"
    assert "cam/frame.jpg" in str(info.value)


def test_truncated_png_detected():
    rng = np.random.default_rng(1)
    data = _encode(Image.fromarray(rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(UnreadableImageError, match="truncated"):
        decode_rgb(data[: len(data) // 2])


def test_truncation_detected_even_if_globally_allowed(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _noise_jpeg(200, 100)
    with pytest.raises(UnreadableImageError, match="truncated"):
        decode_rgb(data[: len(data) // 2])


def test_empty_and_non_image_bytes():
    with pytest.raises(UnreadableImageError, match="empty file") as info:
        decode_rgb(b"", source="empty.jpg")
    assert info.value.reason == "empty file"
    with pytest.raises(UnreadableImageError, match="not an image") as info:
        decode_rgb(b"<html>404 not found</html>")
    assert info.value.reason.startswith("not an image")


def test_draft_decodes_large_jpeg_at_reduced_scale_but_not_below_target():
    data = _noise_jpeg(1920, 1080)
    full = decode_rgb(data)
    small = decode_rgb(data, target_size=518)
    assert full.size == (1920, 1080)
    assert small.size == (960, 540)
    assert min(small.size) >= 518
    # not much larger than the target: no reduction
    assert decode_rgb(_noise_jpeg(700, 600), target_size=518).size == (700, 600)


def test_load_frame_shape_and_content():
    img = Image.new("RGB", (640, 480), (50, 100, 150))
    frame = load_frame(_encode(img, "PNG"), 518)
    assert frame.shape == (518, 518, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[100, 100], [50, 100, 150])
    assert load_frame(_noise_jpeg(1920, 1080), 280).shape == (280, 280, 3)
    with pytest.raises(UnreadableImageError, match="not an image"):
        load_frame(b"not an image", 518)


def test_frame_to_tensor():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 28, 42, 3), dtype=np.uint8)
    t = frame_to_tensor(frames)
    assert t.shape == (2, 3, 28, 42) and t.dtype == torch.uint8
    assert torch.equal(t[1, 2], torch.from_numpy(frames[1, :, :, 2]))
    assert frame_to_tensor(frames[0]).shape == (1, 3, 28, 42)
    with pytest.raises(ValueError, match="uint8"):
        frame_to_tensor(frames.astype(np.float32))
