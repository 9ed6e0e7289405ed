"""``--device`` checks: one line naming the device, what this machine has and the fix."""

from __future__ import annotations

import pytest
import torch

from plumenet.errors import ConfigError
from plumenet.model.device import check_device, device_problem

NO_GPU = {"cuda_count": 0, "mps_available": False, "torch_version": "2.0"}


@pytest.mark.parametrize("device", [None, "auto", "cpu"])
def test_cpu_and_auto_always_run(device):
    assert device_problem(device, **NO_GPU) is None


def test_cuda_index_must_exist():
    assert device_problem("cuda", cuda_count=1, mps_available=False) is None
    assert device_problem("cuda:1", cuda_count=2, mps_available=False) is None
    problem = device_problem("cuda:2", cuda_count=2, mps_available=False, torch_version="2.0")
    assert problem == (
        "--device cuda:2: this machine has 2 CUDA device(s) (torch 2.0) — leave --device out "
        "(auto: CUDA when present, else CPU) or pass --device cpu"
    )
    assert device_problem("cuda", **NO_GPU).startswith(
        "--device cuda: this machine has no CUDA device torch can use (torch 2.0) — "
    )


def test_names_torch_does_not_know_list_the_valid_ones():
    for name in ("gpu", "cuda:x", "CUDA", "cuda:0:1"):
        assert device_problem(name, **NO_GPU) == (
            f"--device {name!r} is not a device: use cpu, cuda, cuda:N, mps or auto"
        )


def test_mps_only_where_available_and_fix_is_the_callers():
    assert device_problem("mps", cuda_count=0, mps_available=True) is None
    problem = device_problem("mps", **{**NO_GPU, "mps_available": False}, fix="use a Mac")
    assert problem == "--device mps: not available on this machine (torch 2.0) — use a Mac"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_check_device_reads_this_machine():
    check_device("cpu")
    check_device(None)
    with pytest.raises(ConfigError, match=r"^--device cuda: this machine has no CUDA device"):
        check_device("cuda")
    with pytest.raises(ConfigError, match=r"^--device 'gpu' is not a device"):
        check_device("gpu")
