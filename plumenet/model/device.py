"""Which torch device a model runs on: the one rule shared by loading, inference and training.

:func:`check_device` is what every command calls on its ``--device`` before it loads a
model or writes a file: torch's own answer to a GPU it lacks is a traceback mid-run.
"""

from __future__ import annotations

import re

import torch

from plumenet.errors import ConfigError

#: What ``--device`` accepts, as the error messages list it.
DEVICE_CHOICES = "cpu, cuda, cuda:N, mps or auto"
#: The default way out of a device this machine lacks.
DEVICE_FIX = "leave --device out (auto: CUDA when present, else CPU) or pass --device cpu"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else CPU; anything else as torch reads it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_problem(
    device: str | None,
    *,
    cuda_count: int,
    mps_available: bool,
    torch_version: str = torch.__version__,
    fix: str = DEVICE_FIX,
) -> str | None:
    """Why ``device`` cannot run here (one line: what, where, how to fix), or ``None``.

    Pure: the machine's devices are arguments, so every branch is testable on a CPU box.
    """
    if device is None or device in ("auto", "cpu"):
        return None
    if not _DEVICE.match(device):
        return f"--device {device!r} is not a device: use {DEVICE_CHOICES}"
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if index < cuda_count:
            return None
        have = f"{cuda_count} CUDA device(s)" if cuda_count else "no CUDA device torch can use"
        return f"--device {device}: this machine has {have} (torch {torch_version}) — {fix}"
    if not mps_available:  # mps
        return f"--device mps: not available on this machine (torch {torch_version}) — {fix}"
    return None


def check_device(device: str | None, *, fix: str = DEVICE_FIX) -> None:
    """Raise :class:`ConfigError` unless ``device`` is a device this machine has."""
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    problem = device_problem(
        device,
        cuda_count=cuda_count,
        mps_available=torch.backends.mps.is_available(),
        fix=fix,
    )
    if problem:
        raise ConfigError(problem)
