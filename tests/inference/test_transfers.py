"""Predictor transfers, attention kernel, compile padding, shared use by several threads.

On CPU the transfer machinery must be the plain path with exactly the old results: the
predictor is checked against an independent re-computation from the model's forward
pass. Tests marked ``gpu`` (CUDA) check the one-synchronisation-per-batch rule with
torch's sync debug mode, pinned-buffer reuse, and CUDA results against CPU results.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from plumenet.inference.predictor import Predictor
from plumenet.inference.transfers import Transfers
from plumenet.model.loaded import LoadedModel, weights_digest
from plumenet.model.network import attention_of, set_attention
from plumenet.model.registry import build_model
from tests.helpers.model import tiny_loaded_model, tiny_model_at

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

#: CUDA (bf16 autocast) vs CPU fp32: quantized probabilities within 2 of 254 levels ...
PROB_LEVELS = 2
#: ... and class fractions within this, absolute.
FRACTION_TOL = 0.02


SIZE = 112  # the tiny architecture at 112 x 112 (8 x 8 grid): fast on a CPU


def _small(seed: int = 0) -> LoadedModel:
    model = tiny_model_at(SIZE, seed=seed)
    digest = weights_digest(model.state_dict())
    return LoadedModel(model, f"tiny-{SIZE}", digest, "tiny", False, "tests")


@pytest.fixture(scope="module")
def tiny():
    return _small()


def _frames(rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@torch.inference_mode()
def _reference(loaded, frames: np.ndarray) -> dict[str, np.ndarray]:
    """The predictor's outputs recomputed from the model alone (no Predictor code)."""
    model = loaded.model.eval()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    grid, full = model.forward_outputs(model.normalize(x))
    prob = torch.softmax(grid.float(), dim=1).numpy()
    labels = full.argmax(dim=1).numpy()
    c = prob.shape[1]
    counts = np.stack([np.bincount(lab.ravel(), minlength=c) for lab in labels])
    luma = (frames.astype(np.float32) * np.float32([0.299, 0.587, 0.114])).sum(-1) / 255
    return {
        "probability": np.round(prob * 254).astype(np.uint8),
        "fraction": (counts / counts.sum(1, keepdims=True)).astype(np.float32),
        "brightness": luma.reshape(len(frames), -1).mean(1),
    }


def test_cpu_transfers_are_the_plain_path(rng):
    t = Transfers(torch.device("cpu"), batch_size=4, frame_shape=(8, 8, 3))
    batch = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    on_device = t.to_device(batch)
    assert on_device.device.type == "cpu" and not on_device.is_pinned()
    np.testing.assert_array_equal(on_device.numpy(), batch)
    out = t.to_host({"a": torch.arange(5), "b": torch.ones(2, dtype=torch.bool)})
    assert out["a"].tolist() == [0, 1, 2, 3, 4] and out["b"].dtype == bool


def test_cpu_results_equal_an_independent_recomputation(tiny, rng):
    frames = _frames(rng, 5)
    pred = Predictor(tiny, device="cpu", batch_size=2).predict(frames)
    ref = _reference(tiny, frames)
    np.testing.assert_array_equal(pred.probability, ref["probability"])
    np.testing.assert_array_equal(pred.fraction, ref["fraction"])
    np.testing.assert_allclose(pred.brightness, ref["brightness"], rtol=1e-5)
    assert pred.fraction.dtype == np.float32 and pred.usable.dtype == bool


def test_tensor_input_gives_the_same_results_as_numpy(tiny, rng):
    frames = _frames(rng, 3)
    predictor = Predictor(tiny, device="cpu", batch_size=2)
    a = predictor.predict(frames)
    b = predictor.predict(torch.from_numpy(frames))
    np.testing.assert_array_equal(a.probability, b.probability)
    np.testing.assert_array_equal(a.fraction, b.fraction)
    with pytest.raises(ValueError, match=r"frames must be \(N, 112, 112, 3\) uint8"):
        predictor.predict(torch.zeros((2, 64, 64, 3), dtype=torch.uint8))


def test_padding_of_partial_batches_for_compile_changes_nothing(tiny, rng):
    """A compiled predictor pads the last batch to full size; the results stay the same."""
    frames = _frames(rng, 3)
    plain = Predictor(tiny, device="cpu", batch_size=2)
    padded = Predictor(tiny, device="cpu", batch_size=2)
    padded.compiled = True  # the padding path, without paying a CPU compile in a test
    a, b = plain.predict(frames), padded.predict(frames)
    np.testing.assert_array_equal(a.probability, b.probability)
    np.testing.assert_array_equal(a.fraction, b.fraction)
    torch.testing.assert_close(plain.grid_logits(frames), padded.grid_logits(frames))


@pytest.mark.parametrize("config", ["tiny", "demo"])
def test_sdpa_and_eager_attention_give_the_same_outputs(config, rng):
    sdpa, eager = build_model(config, seed=1), build_model(config, seed=1)
    set_attention(sdpa, "sdpa")
    set_attention(eager, "eager")
    assert (attention_of(sdpa), attention_of(eager)) == ("sdpa", "eager")
    size = sdpa.config.input_size
    x = sdpa.normalize(torch.from_numpy(_frames(rng, 2, size)).permute(0, 3, 1, 2))
    with torch.inference_mode():
        torch.testing.assert_close(
            sdpa.forward_grid(x), eager.forward_grid(x), atol=1e-4, rtol=1e-4
        )


def test_predictor_selects_sdpa_and_rejects_unknown_kernels(tiny):
    assert attention_of(Predictor(tiny, device="cpu").model) == "sdpa"
    with pytest.raises(ValueError, match="attention must be one of sdpa, eager"):
        Predictor(tiny, device="cpu", attention="flash")


def test_threads_sharing_one_predictor_get_their_own_results(tiny, rng):
    """Several units per GPU share one predictor from threads: no result crosses over."""
    predictor = Predictor(tiny, device="cpu", batch_size=2)
    inputs = [_frames(np.random.default_rng(s), 3) for s in range(3)]
    serial = [predictor.predict(f).probability for f in inputs]
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = predictor.predict(inputs[k]).probability

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(3):
        np.testing.assert_array_equal(results[k], serial[k])


def test_cuda_batch_size_applies_only_on_cuda(tmp_path):
    from plumenet.jobs.workunit import get_predictor
    from plumenet.model.weights import save_model

    save_model(build_model("tiny", seed=0), tmp_path / "tiny", model_id="tiny-bs")
    p = get_predictor(str(tmp_path / "tiny"), device="cpu", batch_size=4, cuda_batch_size=64)
    assert p.batch_size == 4


# ---------------------------------------------------------------------------- gpu


@pytest.mark.gpu
@needs_cuda
def test_one_synchronisation_per_batch_and_reused_pinned_buffers(tiny, rng):
    predictor = Predictor(tiny, device="cuda", batch_size=4)
    frames = _frames(rng, 12)
    predictor.predict(frames)  # warm-up: allocations, cuBLAS handles
    torch.cuda.set_sync_debug_mode("error")  # any implicit sync raises
    try:
        predictor.predict(frames)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    transfers = predictor._transfers
    pointers = {slot.host.data_ptr() for slot in transfers._state.slots}
    assert len(pointers) == Transfers.SLOTS
    assert all(slot.host.is_pinned() for slot in transfers._state.slots)


@pytest.mark.gpu
@needs_cuda
def test_cuda_outputs_match_cpu_outputs(rng):
    frames = _frames(rng, 6, 518)
    cpu = Predictor(tiny_loaded_model(seed=0), device="cpu").predict(frames)
    cuda = Predictor(tiny_loaded_model(seed=0), device="cuda", batch_size=4).predict(frames)
    assert cpu.probability.shape == (6, 6, 37, 37)
    assert np.abs(cuda.probability.astype(int) - cpu.probability).max() <= PROB_LEVELS
    assert np.abs(cuda.fraction - cpu.fraction).max() <= FRACTION_TOL
    np.testing.assert_allclose(cuda.brightness, cpu.brightness, atol=1e-5)
