"""TorchScript: traced files from elsewhere and exported files load with their identity."""

from __future__ import annotations

import hashlib
import logging

import pytest
import torch

from plumenet.model.torchscript import export_torchscript
from plumenet.model.weights import load_model
from tests.helpers.model import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=3)


@pytest.fixture(scope="module")
def batch():
    return torch.randn(2, 3, 518, 518, generator=torch.Generator().manual_seed(0))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_traced_torchscript_round_trip(tmp_path, model, batch, caplog):
    # A plain traced file, as published elsewhere: no plumenet metadata inside.
    with torch.no_grad():
        traced = torch.jit.trace(model, batch[:1], check_trace=False)
    path = tmp_path / "plumenet_traced.pt"
    torch.jit.save(traced, str(path))
    with caplog.at_level(logging.WARNING, logger="plumenet.model.torchscript"):
        loaded = load_model(str(path), device="cpu")
    assert "executes code" in caplog.text
    assert loaded.model_id == "plumenet_traced"
    assert loaded.metadata["format"] == "torchscript"
    assert loaded.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    with torch.no_grad():
        ref_full = model(batch[:1])
        ref_grid = model.forward_grid(batch[:1])
        out_full = loaded.model(batch[:1])
        grid, full = loaded.model.forward_outputs(batch[:1])
    torch.testing.assert_close(out_full, ref_full, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(full, ref_full, rtol=1e-4, atol=1e-4)
    assert grid.shape == ref_grid.shape == (1, 6, 37, 37)
    # The grid of a full-resolution scripted model is the patch average of its logits.
    torch.testing.assert_close(
        grid, torch.nn.functional.adaptive_avg_pool2d(ref_full, (37, 37)), rtol=1e-4, atol=1e-4
    )


def test_export_torchscript_keeps_identity(tmp_path, model, batch):
    path = export_torchscript(model, tmp_path / "m.ts", model_id="tiny-traced")
    loaded = load_model(str(path))
    assert loaded.model_id == "tiny-traced"
    assert loaded.model.config.name == "tiny"
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(batch[:1]), model(batch[:1]), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_file_traced_at_another_size_fails_at_load_in_one_line(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from plumenet.cli import main
    from plumenet.errors import WeightsError
    from tests.helpers.model import tiny_model_at

    with torch.no_grad():
        traced = torch.jit.trace(tiny_model_at(112), torch.zeros(1, 3, 112, 112), check_trace=False)
    path = tmp_path / "traced112.pt"
    torch.jit.save(traced, str(path))
    with pytest.raises(WeightsError, match=r"does not run at the assumed 518 x 518 input \("):
        load_model(str(path), device="cpu")
    image = tmp_path / "a.png"
    Image.new("RGB", (64, 48)).save(image)
    out = tmp_path / "out"
    args = ["predict", str(image), "--model", str(path), "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "RuntimeError: shape" in errors[0] and "export_torchscript" in errors[0]
    assert "Traceback" not in result.output and not out.exists()
