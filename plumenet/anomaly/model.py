"""The PaDiM ``nn.Module``: per-position Gaussians over backbone features, no I/O, no fitting.

:class:`PadimModel` holds the statistics as buffers (the random channel subset included)
and scores layer grids: a patch's Mahalanobis distance (or negative log-likelihood, NLML)
under the Gaussian of its grid position, a frame's score the maximum of the patch map after
upsampling and a Gaussian blur (published PaDiM) or the raw largest patch score. The score
kind is part of the fitted model, so a worker scores exactly as the model was fitted. It is
filled by :func:`~plumenet.anomaly.fit.fit_padim`, written and read by
:mod:`plumenet.anomaly.files` and bound to a segmentation model by
:class:`~plumenet.anomaly.scorer.AnomalyScorer`. The method, the equations and the defaults
are in ``docs/anomaly.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plumenet.anomaly.features import to_input, unwrap_model
from plumenet.anomaly.image_score import (
    DEFAULT_SIGMA,
    REDUCTIONS,
    image_scores,
    weights_for_layers,
)
from plumenet.model.loaded import LoadedModel
from plumenet.model.network import PlumeNet

__all__ = [
    "DEFAULT_CHANNELS",
    "DEFAULT_EPS",
    "DISTANCES",
    "FORMAT",
    "FORMAT_VERSION",
    "MODES",
    "PadimModel",
]

#: Ways of combining several layers: one Gaussian over the concatenated channels, or one
#: Gaussian per layer with the per-layer scores combined by weights.
MODES: tuple[str, ...] = ("concat", "weighted")
#: Patch scores: Mahalanobis distance (PaDiM) or the negative log-likelihood under the
#: patch's Gaussian, log-determinant included (NLML, Popescu et al. 2024).
DISTANCES: tuple[str, ...] = ("mahalanobis", "nlml")
#: Channels kept from the concatenated layer features (anomalib's default for ResNet-18).
DEFAULT_CHANNELS = 100
#: Covariance regularisation: ``Sigma + eps * I`` (as in PaDiM / anomalib).
DEFAULT_EPS = 0.01

#: What :meth:`PadimModel.describe` records as the file format (see plumenet.anomaly.files).
FORMAT = "plumenet-padim"
#: 2: distance, reduction (blur), sigma and layer-weight scheme; ``log_det_g`` buffers.
FORMAT_VERSION = 2
_LOG_2PI = math.log(2.0 * math.pi)


def _split_channels(n_channels: int, dims: Sequence[int]) -> list[int]:
    """Channels per layer, proportional to each layer's width (largest remainder, >= 1)."""
    total = sum(dims)
    n = min(n_channels, total)
    if n < len(dims):
        raise ValueError(f"n_channels={n_channels} is fewer than the {len(dims)} layers used")
    exact = [n * d / total for d in dims]
    counts = [max(1, math.floor(e)) for e in exact]
    order = sorted(range(len(dims)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    i = 0
    while sum(counts) < n:
        j = order[i % len(order)]
        if counts[j] < dims[j]:
            counts[j] += 1
        i += 1
    while sum(counts) > n:  # only when the ">= 1" floor overshot
        j = max(range(len(dims)), key=lambda k: counts[k])
        counts[j] -= 1
    return counts


class PadimModel(nn.Module):
    """Per-position Gaussians over backbone patch features.

    ``layers`` are backbone block indices (resolved, non-negative; 0 = embeddings),
    ``layer_dims`` their widths. Features of all layers are resized to the largest grid,
    concatenated along channels and reduced to a fixed random subset of ``n_channels``
    channels (drawn per layer in proportion to its width with ``seed``; the ``idx`` buffer).

    ``mode="concat"``: one Gaussian over all kept channels (PaDiM).
    ``mode="weighted"``: one Gaussian per layer over that layer's kept channels; the patch
    score is ``sum_k w_k s_k`` with ``layer_weights`` ``"rms"`` (``w_k ∝ 1 / RMS`` baseline
    distance of layer k, the default), ``"depth"`` (deeper layers more, Popescu et al.) or
    explicit numbers (see :func:`~plumenet.anomaly.image_score.weights_for_layers`).

    ``distance``: ``"mahalanobis"`` (``s = d``) or ``"nlml"``
    (``s = (d^2 + log det(Sigma + eps I) + C log 2 pi) / 2``). ``reduction``: ``"blur"``
    (upsample to the input size, Gaussian blur of ``sigma`` pixels, max) or ``"max"``.

    Buffers (``P = h * w`` positions, ``C_g`` channels of group ``g``): ``idx`` (C,),
    ``mean_g`` (P x C_g), ``inv_covariance_g`` (P x C_g x C_g), ``log_det_g`` (P,),
    ``weights`` (G,). A new model holds zero statistics until :meth:`set_statistics` (see
    :func:`fit_padim`).
    """

    def __init__(
        self,
        layers: Sequence[int],
        layer_dims: Sequence[int],
        grid_size: tuple[int, int],
        input_size: int,
        *,
        n_channels: int = DEFAULT_CHANNELS,
        mode: str = "concat",
        distance: str = "mahalanobis",
        reduction: str = "blur",
        sigma: float = DEFAULT_SIGMA,
        layer_weights: str | Sequence[float] | None = None,
        seed: int = 0,
        eps: float = DEFAULT_EPS,
        backbone: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
        if len(layers) != len(layer_dims) or not layers:
            raise ValueError("layers and layer_dims must be non-empty and of equal length")
        if any(int(k) < 0 for k in layers):
            raise ValueError(f"layers must be resolved to non-negative indices, got {list(layers)}")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if mode == "concat" and layer_weights is not None:
            raise ValueError("layer weights need mode='weighted' (one Gaussian per layer)")
        self.layers = tuple(int(k) for k in layers)
        self.layer_dims = tuple(int(d) for d in layer_dims)
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        self.input_size = int(input_size)
        self.mode = mode
        self.distance = distance
        self.reduction = reduction
        self.sigma = float(sigma)
        self.weighting: str | tuple[float, ...] | None = None
        if mode == "weighted":
            scheme = "rms" if layer_weights is None else layer_weights
            self.weighting = scheme if isinstance(scheme, str) else tuple(map(float, scheme))
            weights_for_layers(self.weighting, self.layers)  # validate now, not after fitting
        self.seed = int(seed)
        self.eps = float(eps)
        self.backbone_info: dict[str, str] = dict(backbone or {})
        self.n_samples = 0

        counts = _split_channels(n_channels, self.layer_dims)
        gen = torch.Generator().manual_seed(self.seed)
        chosen, offset = [], 0
        for dim, count in zip(self.layer_dims, counts, strict=True):
            local = torch.randperm(dim, generator=gen)[:count].sort().values
            chosen.append(local + offset)
            offset += dim
        self.register_buffer("idx", torch.cat(chosen).to(torch.long))
        self.n_channels = int(self.idx.numel())
        # Groups: slices of ``idx`` modelled by one Gaussian each.
        if mode == "concat":
            self.group_sizes: tuple[int, ...] = (self.n_channels,)
        else:
            self.group_sizes = tuple(counts)
        positions = self.grid_size[0] * self.grid_size[1]
        for g, c in enumerate(self.group_sizes):
            self.register_buffer(f"mean_{g}", torch.zeros(positions, c))
            self.register_buffer(f"inv_covariance_{g}", torch.zeros(positions, c, c))
            self.register_buffer(f"log_det_{g}", torch.zeros(positions))
        self.register_buffer("weights", torch.ones(len(self.group_sizes)) / len(self.group_sizes))

    # -- statistics
    @property
    def num_groups(self) -> int:
        return len(self.group_sizes)

    def group_bounds(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each group within the kept channels."""
        bounds, start = [], 0
        for c in self.group_sizes:
            bounds.append((start, start + c))
            start += c
        return bounds

    def set_statistics(
        self,
        means: Sequence[torch.Tensor],
        covariances: Sequence[torch.Tensor],
        n_samples: int,
    ) -> None:
        """Store per-group means (P x C_g) and covariances (P x C_g x C_g), any float dtype.

        Inverts ``Sigma + eps I`` and takes its log-determinant in float64, and sets the
        layer weights (weighted mode). For ``"rms"`` weights the mean squared distance of
        the baseline itself is ``tr((Sigma+eps I)^-1 Sigma)`` times ``(n-1)/n``, so no
        second pass over the baseline is needed.
        """
        if len(means) != self.num_groups or len(covariances) != self.num_groups:
            raise ValueError(f"expected statistics for {self.num_groups} group(s)")
        rms = []
        for g, (mu, cov) in enumerate(zip(means, covariances, strict=True)):
            cov = cov.to(torch.float64)
            c = cov.shape[-1]
            eye = torch.eye(c, dtype=torch.float64, device=cov.device)
            inv = torch.linalg.inv(cov + self.eps * eye)
            log_det = torch.linalg.slogdet(cov + self.eps * eye).logabsdet
            msq = (
                torch.einsum("pij,pji->p", inv, cov).mean()
                * max(n_samples - 1, 1)
                / max(n_samples, 1)
            )
            rms.append(float(msq.clamp_min(1e-12).sqrt()))
            target = getattr(self, f"mean_{g}")
            target.copy_(mu.to(target.device, torch.float32))
            getattr(self, f"inv_covariance_{g}").copy_(inv.to(target.device, torch.float32))
            getattr(self, f"log_det_{g}").copy_(log_det.to(target.device, torch.float32))
        if self.weighting is None:
            self.weights.fill_(1.0)
        else:
            self.weights.copy_(weights_for_layers(self.weighting, self.layers, rms))
        self.n_samples = int(n_samples)

    # -- features
    def embed(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids (list of ``B x D_k x h_k x w_k``, in ``layers`` order) -> ``B x C x h x w``.

        Grids are resized (bilinear) to :attr:`grid_size`, concatenated and reduced to the
        kept channels.
        """
        if len(layer_grids) != len(self.layers):
            raise ValueError(
                f"expected {len(self.layers)} layer grids (layers {list(self.layers)}), "
                f"got {len(layer_grids)}"
            )
        parts = []
        for grid, dim, layer in zip(layer_grids, self.layer_dims, self.layers, strict=True):
            if grid.dim() != 4 or grid.shape[1] != dim:
                raise ValueError(
                    f"layer {layer}: expected a B x {dim} x h x w grid, got {tuple(grid.shape)}"
                )
            if tuple(grid.shape[-2:]) != self.grid_size:
                grid = F.interpolate(
                    grid.float(), size=self.grid_size, mode="bilinear", align_corners=False
                )
            parts.append(grid)
        feats = torch.cat(parts, dim=1)
        return feats.index_select(1, self.idx.to(feats.device))

    # -- scoring
    def _group_d2(self, layer_grids: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Layer grids -> per group the squared Mahalanobis distances, ``P x B`` each."""
        emb = self.embed(layer_grids).float()
        b = emb.shape[0]
        h, w = self.grid_size
        # P x B x C: one batched matrix product per position.
        emb = emb.reshape(b, emb.shape[1], h * w).permute(2, 0, 1)
        out = []
        for g, (start, stop) in enumerate(self.group_bounds()):
            mu = getattr(self, f"mean_{g}")
            inv = getattr(self, f"inv_covariance_{g}")
            delta = emb[:, :, start:stop] - mu.unsqueeze(1)
            out.append((torch.bmm(delta, inv) * delta).sum(-1).clamp_min(0))
        return out

    def _to_maps(self, per_group: Sequence[torch.Tensor]) -> torch.Tensor:
        """``P x B`` per group -> ``G x B x h x w``."""
        h, w = self.grid_size
        return torch.stack([x.permute(1, 0).reshape(-1, h, w) for x in per_group])

    def group_distances(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``G x B x h x w`` unweighted Mahalanobis distances per group."""
        return self._to_maps([d2.sqrt() for d2 in self._group_d2(layer_grids)])

    def group_nlml(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``G x B x h x w`` negative log-likelihoods per group.

        ``(d^2 + log det(Sigma_p + eps I) + C_g log(2 pi)) / 2``: ``-log N(x; mu_p, Sigma_p +
        eps I)``, so a patch whose position is usually stable (small determinant) is
        penalised more for the same Mahalanobis distance than one that always varies.
        """
        out = []
        for g, d2 in enumerate(self._group_d2(layer_grids)):
            log_det = getattr(self, f"log_det_{g}").unsqueeze(1)
            out.append(0.5 * (d2 + log_det + self.group_sizes[g] * _LOG_2PI))
        return self._to_maps(out)

    def group_scores(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``G x B x h x w`` patch scores of this model's ``distance``."""
        if self.distance == "nlml":
            return self.group_nlml(layer_grids)
        return self.group_distances(layer_grids)

    def score_patches(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``B x h x w`` patch scores (weighted sum over groups)."""
        scores = self.group_scores(layer_grids)
        return torch.einsum("g,gbhw->bhw", self.weights.to(scores.dtype), scores)

    def score_features(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``B`` frame scores (this model's ``reduction`` of the patch map)."""
        return image_scores(
            self.score_patches(layer_grids),
            self.input_size,
            reduction=self.reduction,
            sigma=self.sigma,
        )

    def forward(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Same as :meth:`score_features`."""
        return self.score_features(layer_grids)

    def attach(self, model: PlumeNet | LoadedModel) -> PadimModel:
        """Remember the model whose backbone :meth:`score` uses by default; returns self.

        The reference is not a submodule: it is neither saved nor moved with this module.
        No digest check here (see :class:`AnomalyScorer`).
        """
        net, _ = unwrap_model(model)
        object.__setattr__(self, "_extractor", net)
        return self

    def score(self, frames: Any, model: PlumeNet | LoadedModel | None = None) -> torch.Tensor:
        """uint8 ``N x S x S x 3`` frames or a normalised ``B x 3 x S x S`` batch -> ``B`` scores.

        ``model`` supplies the backbone, by default the one attached by :func:`fit_padim`,
        :meth:`attach` or :class:`AnomalyScorer` (it must be the backbone the statistics
        were fitted with; :class:`AnomalyScorer` checks that once).
        """
        if model is None:
            net = self.__dict__.get("_extractor")
            if net is None:
                raise ValueError(
                    "no backbone attached: pass the model, or call attach(model) first"
                )
        else:
            net, _ = unwrap_model(model)
        x = to_input(frames, net)
        self.check_size(x)
        with torch.inference_mode():
            grids = net.backbone.forward_layers(x, self.layers)
            return self.score_features(grids)

    def check_size(self, x: torch.Tensor) -> None:
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(
                f"the anomaly model was fitted on {self.input_size} x {self.input_size} frames, "
                f"got {x.shape[-2]} x {x.shape[-1]}; decode frames at the model's input size"
            )

    # -- description
    def describe(self) -> dict[str, Any]:
        """JSON-friendly configuration (what :func:`save_padim` writes to ``padim.json``)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "layers": list(self.layers),
            "layer_dims": list(self.layer_dims),
            "grid_size": list(self.grid_size),
            "input_size": self.input_size,
            "mode": self.mode,
            "distance": self.distance,
            "reduction": self.reduction,
            "sigma": self.sigma,
            "layer_weights": (
                list(self.weighting) if isinstance(self.weighting, tuple) else self.weighting
            ),
            "n_channels": self.n_channels,
            "channels": self.idx.tolist(),
            "seed": self.seed,
            "eps": self.eps,
            "weights": [float(w) for w in self.weights.tolist()],
            "n_samples": self.n_samples,
            "backbone": dict(self.backbone_info),
        }

    def extra_repr(self) -> str:
        return (
            f"layers={list(self.layers)}, mode={self.mode!r}, distance={self.distance!r}, "
            f"reduction={self.reduction!r}, n_channels={self.n_channels}, "
            f"grid={self.grid_size}, n_samples={self.n_samples}"
        )
