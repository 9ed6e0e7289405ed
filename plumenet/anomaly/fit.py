"""Fitting a PaDiM model: one streaming pass over baseline frames.

:func:`fit_padim` runs the backbone over batches of a camera's normal views, accumulates
per-position means and covariances in float64 (so any number of frames fits in memory)
and returns a fitted :class:`~plumenet.anomaly.model.PadimModel` attached to the backbone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from plumenet.anomaly.features import (
    backbone_digest,
    default_layers,
    resolve_layers,
    to_input,
    unwrap_model,
)
from plumenet.anomaly.image_score import DEFAULT_SIGMA
from plumenet.anomaly.model import DEFAULT_CHANNELS, DEFAULT_EPS, PadimModel
from plumenet.model.loaded import LoadedModel
from plumenet.model.network import PlumeNet

__all__ = ["baseline_shortfall", "fit_padim"]

log = logging.getLogger(__name__)


class _Moments:
    """Streaming float64 sums for one group: n, sum x (P x C), sum x x^T (P x C x C)."""

    def __init__(self, positions: int, channels: int, device: torch.device) -> None:
        self.n = 0
        self.s1 = torch.zeros(positions, channels, dtype=torch.float64, device=device)
        self.s2 = torch.zeros(positions, channels, channels, dtype=torch.float64, device=device)

    def add(self, x: torch.Tensor) -> None:
        """``x``: P x B x C."""
        x = x.to(torch.float64)
        self.n += int(x.shape[1])
        self.s1 += x.sum(dim=1)
        self.s2 += torch.bmm(x.transpose(1, 2), x)

    def finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        mean = self.s1 / n
        cov = (self.s2 - n * mean.unsqueeze(2) * mean.unsqueeze(1)) / max(n - 1, 1)
        return mean, 0.5 * (cov + cov.transpose(1, 2))


def baseline_shortfall(n_samples: int, group_sizes: Sequence[int], eps: float) -> str | None:
    """Why a baseline is too short for its Gaussians (``None``: it is not), as one line.

    ``n`` frames give each patch position ``n`` samples, so its covariance has rank at most
    ``n - 1``: with ``C`` channels per Gaussian and ``n <= C`` the fit still succeeds (the
    ``eps * I`` regularisation makes it invertible), but every direction the baseline never
    varied in scores by ``eps`` alone, so most normal frames look anomalous.
    """
    channels = max(group_sizes)
    if n_samples > channels:
        return None
    return (
        f"the baseline has {n_samples} frames for {channels} channels per Gaussian, so each "
        f"patch covariance has rank at most {n_samples - 1} and is mostly the eps={eps:g} "
        f"regularisation: scores will not be meaningful; fit on more than {channels} frames "
        f"(several times more is better: widen --start/--end or raise --max-frames) or pass "
        f"--channels below {n_samples}"
    )


def fit_padim(
    model: PlumeNet | LoadedModel,
    frames_iter: Iterable[Any],
    *,
    layers: Sequence[int] | None = None,
    n_channels: int = DEFAULT_CHANNELS,
    seed: int = 0,
    mode: str = "concat",
    distance: str = "mahalanobis",
    reduction: str = "blur",
    sigma: float = DEFAULT_SIGMA,
    layer_weights: str | Sequence[float] | None = None,
    eps: float = DEFAULT_EPS,
) -> PadimModel:
    """Fit per-position Gaussians on baseline frames; returns a :class:`PadimModel`.

    ``frames_iter`` yields batches of uint8 ``N x S x S x 3`` frames (numpy or torch) or
    normalised ``B x 3 x S x S`` float tensors at the model's input size. Means and
    covariances are accumulated in float64 in one pass, so any number of frames fits in
    memory. ``layers`` default to :func:`default_layers` of the backbone depth; negative
    indices count from the end. At least two frames are needed. ``distance``,
    ``reduction``, ``sigma`` and ``layer_weights`` (weighted mode only) choose the score
    and are saved with the model (see :class:`PadimModel`); they are checked before the
    first frame is read.
    """
    net, ident = unwrap_model(model)
    backbone = net.backbone
    num_layers = int(backbone.num_layers)
    resolved = resolve_layers(
        layers if layers is not None else default_layers(num_layers), num_layers
    )
    ident["digest"] = backbone_digest(net)
    options: dict[str, Any] = {
        "n_channels": n_channels,
        "mode": mode,
        "distance": distance,
        "reduction": reduction,
        "sigma": sigma,
        "layer_weights": layer_weights,
        "seed": seed,
        "eps": eps,
    }
    # Bad options fail here, before the backbone reads a single frame.
    PadimModel(resolved, [max(n_channels, 1)] * len(resolved), (1, 1), 1, **options)
    padim: PadimModel | None = None
    moments: list[_Moments] = []
    for batch in frames_iter:
        x = to_input(batch, net)
        if x.shape[0] == 0:
            continue
        with torch.inference_mode():
            grids = backbone.forward_layers(x, resolved)
        if padim is None:
            grid_size = (max(int(g.shape[-2]) for g in grids), max(int(g.shape[-1]) for g in grids))
            padim = PadimModel(
                resolved,
                [int(g.shape[1]) for g in grids],
                grid_size,
                int(x.shape[-1]),
                backbone=ident,
                **options,
            ).to(x.device)
            positions = grid_size[0] * grid_size[1]
            moments = [_Moments(positions, c, x.device) for c in padim.group_sizes]
        padim.check_size(x)
        with torch.inference_mode():
            emb = padim.embed(grids)
        b, c = emb.shape[:2]
        emb = emb.reshape(b, c, -1).permute(2, 0, 1)
        for m, (start, stop) in zip(moments, padim.group_bounds(), strict=True):
            m.add(emb[:, :, start:stop])
        log.debug("padim: %d baseline frames accumulated", moments[0].n)
    if padim is None or moments[0].n < 2:
        n = 0 if padim is None else moments[0].n
        raise ValueError(f"fitting an anomaly model needs at least 2 baseline frames, got {n}")
    stats = [m.finish() for m in moments]
    padim.set_statistics([s[0] for s in stats], [s[1] for s in stats], moments[0].n)
    log.info(
        "padim fitted on %d frames: layers %s, %d channels, mode %s, %s, %s",
        padim.n_samples,
        list(padim.layers),
        padim.n_channels,
        padim.mode,
        padim.distance,
        padim.reduction,
    )
    return padim.eval().attach(net)
