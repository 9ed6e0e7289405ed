"""GPU JPEG decode: the routing rule, the Pillow-matching resize, the per-frame fallback.

CPU tests cover everything that needs no nvJPEG: which bytes go to the GPU, the draft
factor, the resize against Pillow (same pixels in, the GPU path's arithmetic on the CPU),
and the fallback of :func:`~plumenet.jobs.gpu_frames.gather_batch` when the decoder fails
frames. Tests marked ``gpu`` need CUDA and torchvision (run by benchmarks/gpu_check.sh):
nvJPEG against Pillow, and every broken-file kind through a work unit on CUDA.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from plumenet.inference.decode import decode_rgb, load_frame
from plumenet.inference.gpu_decode import (
    GpuDecoded,
    draft_factor,
    gpu_decodable,
    gpu_decode_available,
    read_jpeg_header,
    resize_like_pillow,
)
from plumenet.jobs.frames import LoadedFrame
from plumenet.jobs.gpu_frames import gather_batch, route

#: Mean absolute difference (grey levels, 0-255) allowed between the GPU resize and Pillow.
RESIZE_MAD = 0.5
#: nvJPEG vs libjpeg (IDCT and chroma upsampling differ) after the resize, grey levels.
NVJPEG_MAD = 2.0
#: Class fractions of the demo model, GPU decode vs Pillow, absolute per class.
FRACTION_TOL = 0.02

needs_gpu = pytest.mark.skipif(
    not gpu_decode_available(), reason="needs CUDA and torchvision (the gpu extra)"
)


def _scene(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients + texture: JPEG-like content, not white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = (np.sin(xx / 37.0) + 1) * 100 + rng.integers(0, 30, (h, w))
    g = (np.cos(yy / 53.0) + 1) * 100
    b = xx * 255.0 / w
    return np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)


def _jpeg(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def _rotated_jpeg(arr: np.ndarray, orientation: int) -> bytes:
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _kinds() -> dict[str, tuple[bytes, bool]]:
    """Bytes of each kind -> whether the routing rule sends them to the GPU."""
    arr = _scene(160, 120)
    png = io.BytesIO()
    Image.fromarray(arr).save(png, "PNG")
    cmyk = io.BytesIO()
    Image.fromarray(arr).convert("CMYK").save(cmyk, "JPEG")
    grey = io.BytesIO()
    Image.fromarray(arr).convert("L").save(grey, "JPEG")
    plain = _jpeg(arr, quality=90)
    sos = plain.index(b"\xff\xda")
    header = plain[: sos + 2 + int.from_bytes(plain[sos + 2 : sos + 4], "big")]
    return {
        "header and end marker, no scan data": (header + b"\xff\xd9", True),
        "baseline": (plain, True),
        "baseline 4:4:4": (_jpeg(arr, subsampling=0), True),
        "exif orientation 1": (_rotated_jpeg(arr, 1), True),
        "exif orientation 6": (_rotated_jpeg(arr, 6), False),
        "exif orientation 3": (_rotated_jpeg(arr, 3), False),
        "progressive": (_jpeg(arr, progressive=True), False),
        "cmyk (adobe)": (cmyk.getvalue(), False),
        "greyscale": (grey.getvalue(), False),
        "png": (png.getvalue(), False),
        "truncated": (plain[: len(plain) // 2], False),
        "empty": (b"", False),
        "garbage": (b"\xff\xd8\xff\xe0 not really a jpeg", False),
    }


@pytest.mark.parametrize("kind", list(_kinds()))
def test_routing_rule_sends_only_plain_upright_complete_jpegs_to_the_gpu(kind):
    data, expected = _kinds()[kind]
    assert gpu_decodable(data) is expected


def test_header_reads_size_components_and_orientation():
    header = read_jpeg_header(_rotated_jpeg(_scene(160, 120), 6))
    assert header is not None
    assert (header.width, header.height, header.components, header.precision) == (160, 120, 3, 8)
    assert (header.sof, header.orientation, header.complete) == (0xC0, 6, True)
    assert read_jpeg_header(b"\x89PNG\r\n") is None


@pytest.mark.parametrize(
    ("w", "h", "size"), [(1920, 1080, 518), (640, 480, 518), (1200, 900, 100), (2592, 1944, 224)]
)
def test_draft_factor_is_the_scale_pillow_draft_picks(w, h, size):
    img = Image.open(io.BytesIO(_jpeg(np.full((h, w, 3), 90, np.uint8))))  # header only
    if min(w, h) >= 2 * size:
        img.draft("RGB", (size, size))
    assert img.size == (-(-w // draft_factor(w, h, size)), -(-h // draft_factor(w, h, size)))


@pytest.mark.parametrize(("w", "h"), [(1920, 1080), (640, 480), (2592, 1944)])
def test_resize_matches_pillow_draft_and_bilinear(w, h):
    """Same decoded pixels in: the GPU path's resize (on the CPU) vs load_frame."""
    data = _jpeg(_scene(w, h, seed=w), quality=90)
    pixels = torch.from_numpy(np.array(decode_rgb(data))).permute(2, 0, 1)
    ours = resize_like_pillow(pixels, 518).numpy().astype(int)
    pillow = load_frame(data, 518).astype(int)
    assert ours.shape == pillow.shape == (518, 518, 3)
    diff = np.abs(ours - pillow)
    assert diff.mean() <= RESIZE_MAD and diff.max() <= 8


def _loaded(key: int, data: bytes, *, keep: bool) -> LoadedFrame:
    frame = None if keep else load_frame(data, 224)
    return LoadedFrame(key, f"f{key}.jpg", frame, None, 0.0, 0.0, data=data if keep else None)


def test_route_splits_kept_bytes_from_decoded_frames():
    data = _jpeg(_scene(160, 120))
    batch = [_loaded(0, data, keep=True), _loaded(1, data, keep=False), _loaded(2, data, keep=True)]
    assert route(batch) == ([0, 2], [1])


def _cpu_decoder(fail: set[int]):
    """Decodes with Pillow on the CPU and fails the positions in ``fail`` (a fault nvJPEG
    cannot be made to show on a CPU machine)."""

    def decode(datas, size, device):
        ok = [i for i in range(len(datas)) if i not in fail]
        frames = [torch.from_numpy(load_frame(datas[i], size)) for i in ok]
        stacked = (
            torch.stack(frames) if frames else torch.empty((0, size, size, 3), dtype=torch.uint8)
        )
        return GpuDecoded(stacked, ok, sorted(fail))

    return decode


def test_frames_the_decoder_fails_are_decoded_by_pillow_or_get_its_reason():
    good = _jpeg(_scene(160, 120, seed=1))
    other = _jpeg(_scene(160, 120, seed=2))
    # Passes the routing rule (complete markers) but has no image data Pillow can read.
    broken = good[:200] + b"\x00" * 50 + b"\xff\xd9"
    batch = [
        _loaded(0, good, keep=True),
        _loaded(1, broken, keep=True),
        _loaded(2, other, keep=False),
        _loaded(3, other, keep=True),
    ]
    # the decoder sees the kept bytes only (batch positions 0, 1, 3) and fails batch 1 and 3
    out = gather_batch(batch, 224, torch.device("cpu"), decoder=_cpu_decoder({1, 2}))
    assert out.kept == [0, 2, 3]
    assert [i for i, _ in out.unreadable] == [1]
    assert out.unreadable[0][1] in {"truncated"} or out.unreadable[0][1].startswith("corrupt")
    assert out.frames.shape == (3, 224, 224, 3)
    np.testing.assert_array_equal(out.frames[0].numpy(), load_frame(good, 224))
    np.testing.assert_array_equal(out.frames[1].numpy(), load_frame(other, 224))
    np.testing.assert_array_equal(out.frames[2].numpy(), load_frame(other, 224))
    assert out.gpu_decoded == 3


def test_a_batch_of_only_broken_frames_is_empty_not_an_error():
    broken = b"\xff\xd8" + b"\x00" * 30 + b"\xff\xd9"
    batch = [_loaded(0, broken, keep=True)]
    out = gather_batch(batch, 224, torch.device("cpu"), decoder=_cpu_decoder({0}))
    assert out.kept == [] and out.frames.shape == (0, 224, 224, 3)
    assert len(out.unreadable) == 1


# ---------------------------------------------------------------------------- gpu


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize(("w", "h"), [(1920, 1080), (640, 480)])
def test_nvjpeg_agrees_with_pillow(w, h):
    from plumenet.inference.gpu_decode import decode_resize

    datas = [_jpeg(_scene(w, h, seed=s), quality=90) for s in range(4)]
    out = decode_resize(datas, 518, "cuda")
    assert out.ok == [0, 1, 2, 3] and out.failed == []
    ours = out.frames.cpu().numpy().astype(int)
    pillow = np.stack([load_frame(d, 518) for d in datas]).astype(int)
    assert np.abs(ours - pillow).mean() <= NVJPEG_MAD


@pytest.mark.gpu
@needs_gpu
def test_demo_model_fractions_agree_between_gpu_and_pillow_decode():
    from plumenet.inference.gpu_decode import decode_resize
    from plumenet.inference.predictor import Predictor
    from plumenet.model.weights import load_model

    loaded = load_model("demo", device="cuda")
    size = loaded.input_size
    rng = np.random.default_rng(3)
    datas = [_jpeg(_scene(1920, 1080, seed=int(s)), quality=90) for s in rng.integers(0, 99, 8)]
    predictor = Predictor(loaded, device="cuda", batch_size=8)
    on_gpu = predictor.predict(decode_resize(datas, size, "cuda").frames)
    on_cpu = predictor.predict(np.stack([load_frame(d, size) for d in datas]))
    assert np.abs(on_gpu.fraction - on_cpu.fraction).max() <= FRACTION_TOL


@pytest.mark.gpu
@needs_gpu
def test_every_broken_file_kind_is_status_2_through_a_cuda_unit(tmp_path, rng):
    import zarr

    from plumenet.jobs.workunit import UnitJob, run_unit
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model
    from tests.jobs.test_workunit import _unit_and_store

    save_model(build_model("tiny", seed=0), tmp_path / "tiny", model_id="tiny-gpu")
    unit, store = _unit_and_store(tmp_path, rng, n=9)
    plain = _jpeg(_scene(320, 240))
    sos = plain.index(b"\xff\xda")
    header = plain[: sos + 2 + int.from_bytes(plain[sos + 2 : sos + 4], "big")]
    contents = {
        0: plain,
        1: plain[: len(plain) // 2],  # truncated (no end marker: Pillow path)
        2: b"",  # empty
        3: b"not an image at all",
        4: plain[:300] + b"\x00" * 40 + b"\xff\xd9",  # cut inside the header: truncated
        5: _rotated_jpeg(_scene(320, 240), 6),  # Pillow path
        6: _jpeg(_scene(320, 240), progressive=True),  # Pillow path
        7: plain,
        # routed to the GPU; Pillow accepts it (grey): the GPU path must agree, not fail it
        8: header + b"\xff\xd9",
    }
    for k, (_, path, _) in enumerate(unit.frames):
        with open(path, "wb") as f:
            f.write(contents[k])
    job = UnitJob(store=store, camera="WU", model=str(tmp_path / "tiny"), model_index=0,
                  device="cuda", cuda_batch_size=8)  # fmt: skip
    summary = run_unit(unit, job)
    status = zarr.open_group(store, mode="r")["WU"]["status"][:9]
    assert [int(s) == 2 for s in status] == [k in {1, 2, 3, 4} for k in range(9)]
    # The header-only file: nvJPEG has been seen to report frames it skipped as decoded
    # (left as uninitialised memory); it must come out as Pillow's flat grey, as frame 0
    # does as Pillow's picture.
    brightness = zarr.open_group(store, mode="r")["WU"]["brightness"][:9]
    luma = np.array([0.299, 0.587, 0.114])
    for k in (0, 8):
        expected = (load_frame(contents[k], 518).astype(np.float64) / 255 @ luma).mean()
        assert brightness[k] == pytest.approx(expected, abs=0.02), k
    reasons = dict(summary.unreadable_files)
    assert reasons[unit.frames[1][1]] == "truncated"
    assert reasons[unit.frames[2][1]] == "empty file"
    assert reasons[unit.frames[3][1]].startswith("not an image")


def test_no_gpu_decode_where_torchvisions_image_extension_did_not_load(monkeypatch, caplog):
    """torchvision only warns when its image library fails to load, and every decode_jpeg
    then raises: the GPU path must be off, not a Pillow fallback for every frame. (Faked:
    torchvision cannot load beside this CPU torch, and the fault cannot be caused here.)"""
    import sys
    import types

    fake = {name: types.ModuleType(name) for name in ("torchvision", "torchvision.io",
                                                      "torchvision.io.image")}  # fmt: skip
    fake["torchvision"].io = fake["torchvision.io"]
    fake["torchvision.io"].image = fake["torchvision.io.image"]
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu_decode_available.cache_clear()
    try:
        fake["torchvision.io.image"]._has_image_ops = lambda: True
        assert gpu_decode_available()
        gpu_decode_available.cache_clear()
        fake["torchvision.io.image"]._has_image_ops = lambda: False
        assert not gpu_decode_available()
        assert "image extension did not load" in caplog.text
    finally:
        gpu_decode_available.cache_clear()


def test_batched_resize_equals_per_frame_resize():
    frames = [_scene(1920, 1080, seed=s) for s in range(3)]
    stacked = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    batched = resize_like_pillow(stacked, 518)
    assert batched.shape == (3, 518, 518, 3)
    for k in range(3):
        torch.testing.assert_close(batched[k], resize_like_pillow(stacked[k], 518))
