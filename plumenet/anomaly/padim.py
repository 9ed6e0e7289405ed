"""Label-free anomaly scores: PaDiM over the frozen backbone's patch features.

A camera's "normal" views (a baseline period without activity) are summarised by one
Gaussian per patch-grid position over features taken from one or several backbone
layers. A new frame's patches are scored by their Mahalanobis distance to the Gaussian
of their position; the frame's score is the largest patch distance. The method, the
equations and the defaults are in ``docs/anomaly.md``.

- :class:`PadimModel` is the plain ``nn.Module``: statistics as buffers (the random
  channel subset included), scoring only, no I/O.
- :func:`fit_padim` is the fitting loop (streaming float64 mean and covariance).
- :func:`save_padim` / :func:`load_padim` write and read a directory
  (``padim.safetensors`` + ``padim.json``).
- :class:`AnomalyScorer` binds a fitted model to a loaded segmentation model (same
  backbone, checked by digest) and scores uint8 frames or precomputed layer grids.
- :func:`auroc` is the rank-based area under the ROC curve (ties count one half).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from plumenet.errors import WeightsError

if TYPE_CHECKING:
    from plumenet.model.network import PlumeNet
    from plumenet.model.weights import LoadedModel

__all__ = [
    "DEFAULT_CHANNELS",
    "DEFAULT_EPS",
    "MODES",
    "AnomalyModelError",
    "AnomalyScorer",
    "PadimModel",
    "auroc",
    "backbone_digest",
    "default_layers",
    "fit_padim",
    "labels_from_truth",
    "load_padim",
    "save_padim",
]

log = logging.getLogger(__name__)

#: Ways of combining several layers: one Gaussian over the concatenated channels, or one
#: Gaussian per layer with the per-layer distances combined by weights.
MODES: tuple[str, ...] = ("concat", "weighted")
#: Channels kept from the concatenated layer features (anomalib's default for ResNet-18).
DEFAULT_CHANNELS = 100
#: Covariance regularisation: ``Sigma + eps * I`` (as in PaDiM / anomalib).
DEFAULT_EPS = 0.01

FORMAT = "plumenet-padim"
FORMAT_VERSION = 1
WEIGHTS_FILE = "padim.safetensors"
CONFIG_FILE = "padim.json"


class AnomalyModelError(WeightsError):
    """An anomaly model cannot be read, or does not belong to the loaded backbone."""


# --------------------------------------------------------------------------- helpers


def default_layers(num_layers: int) -> tuple[int, ...]:
    """Layers used when none are given: about one third, two thirds and the last block.

    ``12 -> (4, 8, 12)``, ``4 -> (1, 3, 4)``, ``2 -> (1, 2)`` (1-based block outputs).
    """
    if num_layers < 1:
        raise ValueError(f"a backbone needs at least one layer, got {num_layers}")
    return tuple(sorted({max(1, round(num_layers * k / 3)) for k in (1, 2, 3)}))


def _resolve_layers(layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    out = []
    for layer in layers:
        k = int(layer)
        k = k + num_layers + 1 if k < 0 else k
        if not 0 <= k <= num_layers:
            raise ValueError(
                f"layer {layer} out of range for a {num_layers}-layer backbone "
                f"(valid: 0..{num_layers} or -1..-{num_layers + 1})"
            )
        out.append(k)
    if not out:
        raise ValueError("layers must name at least one backbone layer")
    if len(set(out)) != len(out):
        raise ValueError(f"layers {list(layers)} name a layer twice")
    return tuple(out)


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


def backbone_digest(model: nn.Module) -> str:
    """SHA-256 of the backbone's weights (``weights_digest`` of its state dict).

    ``model`` is a :class:`~plumenet.model.network.PlumeNet` (its ``backbone`` is hashed) or a
    backbone module itself.
    """
    from plumenet.model.weights import weights_digest

    backbone = getattr(model, "backbone", model)
    return weights_digest(backbone.state_dict())


def _unwrap(model: PlumeNet | LoadedModel) -> tuple[PlumeNet, dict[str, str]]:
    """The PlumeNet and its identity (model id/digest, backbone name) from either type."""
    if hasattr(model, "model") and hasattr(model, "digest"):
        net = model.model
        ident = {
            "model_id": str(model.model_id),
            "model_digest": str(model.digest),
            "backbone": str(model.backbone),
            "source": str(getattr(model, "source", "")),
        }
    else:
        net = model
        cfg = getattr(net, "config", None)
        name = getattr(cfg, "hf_backbone", None) or getattr(cfg, "name", "")
        ident = {"model_id": "", "model_digest": "", "backbone": str(name), "source": ""}
    backbone = getattr(net, "backbone", None)
    if backbone is None or not hasattr(backbone, "forward_layers"):
        raise AnomalyModelError(
            f"model {ident['model_id'] or type(net).__name__!r} exposes no backbone with "
            "intermediate layers (TorchScript models cannot be used for anomaly scores); "
            "load weights from a model directory, `hf:OWNER/REPO` or `demo`"
        )
    return net, ident


def _to_input(frames: Any, net: PlumeNet) -> torch.Tensor:
    """uint8 ``N x S x S x 3`` (numpy or tensor) or a normalised ``B x 3 x H x W`` float tensor
    -> the normalised float batch on the model's device."""
    device = net.device
    if isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise ValueError(f"numpy frames must be uint8 N x S x S x 3, got dtype {frames.dtype}")
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a numpy array or a torch tensor, got {type(frames)}")
    if frames.dtype == torch.uint8:
        if frames.dim() == 3:
            frames = frames.unsqueeze(0)
        if frames.dim() != 4 or frames.shape[-1] != 3:
            raise ValueError(f"uint8 frames must be N x S x S x 3, got {tuple(frames.shape)}")
        x = frames.to(device).permute(0, 3, 1, 2)
        return net.normalize(x)
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(
            f"float frames must be a normalised B x 3 x H x W batch, got {tuple(frames.shape)}"
        )
    return frames.to(device=device, dtype=torch.float32)


# --------------------------------------------------------------------------- model


class PadimModel(nn.Module):
    """Per-position Gaussians over backbone patch features, scored by Mahalanobis distance.

    ``layers`` are 1-based backbone block indices (resolved, non-negative), ``layer_dims``
    their widths. Features of all layers are resized to the largest grid, concatenated
    along channels and reduced to a fixed random subset of ``n_channels`` channels
    (drawn per layer in proportion to its width with ``seed``; the ``idx`` buffer).

    ``mode="concat"``: one Gaussian over all kept channels (PaDiM).
    ``mode="weighted"``: one Gaussian per layer over that layer's kept channels; the patch
    distance is ``sum_k w_k d_k`` with ``w_k`` proportional to the inverse of layer k's RMS
    distance on the baseline (weighted Mahalanobis).

    Buffers (``P = h * w`` positions, ``C_g`` channels of group ``g``): ``idx`` (C,),
    ``mean_g`` (P x C_g), ``inv_covariance_g`` (P x C_g x C_g), ``weights`` (G,). A new
    model holds zero statistics until :meth:`set_statistics` (see :func:`fit_padim`).
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
        seed: int = 0,
        eps: float = DEFAULT_EPS,
        backbone: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if len(layers) != len(layer_dims) or not layers:
            raise ValueError("layers and layer_dims must be non-empty and of equal length")
        if any(int(k) < 0 for k in layers):
            raise ValueError(f"layers must be resolved to non-negative indices, got {list(layers)}")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.layers = tuple(int(k) for k in layers)
        self.layer_dims = tuple(int(d) for d in layer_dims)
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        self.input_size = int(input_size)
        self.mode = mode
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

        Inverts ``Sigma + eps I`` in float64 and sets the layer weights (weighted mode):
        the mean squared distance of the baseline itself is ``tr((Sigma+eps I)^-1 Sigma)``
        times ``(n-1)/n``, so no second pass over the baseline is needed.
        """
        if len(means) != self.num_groups or len(covariances) != self.num_groups:
            raise ValueError(f"expected statistics for {self.num_groups} group(s)")
        rms = []
        for g, (mu, cov) in enumerate(zip(means, covariances, strict=True)):
            cov = cov.to(torch.float64)
            c = cov.shape[-1]
            eye = torch.eye(c, dtype=torch.float64, device=cov.device)
            inv = torch.linalg.inv(cov + self.eps * eye)
            msq = (
                torch.einsum("pij,pji->p", inv, cov).mean()
                * max(n_samples - 1, 1)
                / max(n_samples, 1)
            )
            rms.append(float(msq.clamp_min(1e-12).sqrt()))
            target = getattr(self, f"mean_{g}")
            target.copy_(mu.to(target.device, torch.float32))
            getattr(self, f"inv_covariance_{g}").copy_(inv.to(target.device, torch.float32))
        if self.mode == "weighted":
            inv_rms = torch.tensor([1.0 / r for r in rms], dtype=torch.float32)
            self.weights.copy_(inv_rms / inv_rms.sum())
        else:
            self.weights.fill_(1.0)
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
    def group_distances(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``G x B x h x w`` unweighted Mahalanobis distances per group."""
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
            d2 = (torch.bmm(delta, inv) * delta).sum(-1).clamp_min(0)
            out.append(d2.sqrt().permute(1, 0).reshape(b, h, w))
        return torch.stack(out)

    def score_patches(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``B x h x w`` Mahalanobis distances (weighted sum in weighted mode)."""
        dist = self.group_distances(layer_grids)
        return torch.einsum("g,gbhw->bhw", self.weights.to(dist.dtype), dist)

    def score_features(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Layer grids -> ``B`` frame scores (largest patch distance)."""
        return self.score_patches(layer_grids).flatten(1).amax(dim=1)

    def forward(self, layer_grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Same as :meth:`score_features`."""
        return self.score_features(layer_grids)

    def attach(self, model: PlumeNet | LoadedModel) -> PadimModel:
        """Remember the model whose backbone :meth:`score` uses by default; returns self.

        The reference is not a submodule: it is neither saved nor moved with this module.
        No digest check here (see :class:`AnomalyScorer`).
        """
        net, _ = _unwrap(model)
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
            net, _ = _unwrap(model)
        x = _to_input(frames, net)
        self._check_size(x)
        with torch.inference_mode():
            grids = net.backbone.forward_layers(x, self.layers)
            return self.score_features(grids)

    def _check_size(self, x: torch.Tensor) -> None:
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
            "n_channels": self.n_channels,
            "channels": self.idx.tolist(),
            "seed": self.seed,
            "eps": self.eps,
            "weights": [float(w) for w in self.weights.tolist()],
            "n_samples": self.n_samples,
            "reduction": "max",
            "backbone": dict(self.backbone_info),
        }

    def extra_repr(self) -> str:
        return (
            f"layers={list(self.layers)}, mode={self.mode!r}, n_channels={self.n_channels}, "
            f"grid={self.grid_size}, n_samples={self.n_samples}"
        )


# --------------------------------------------------------------------------- fitting


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


def fit_padim(
    model: PlumeNet | LoadedModel,
    frames_iter: Iterable[Any],
    *,
    layers: Sequence[int] | None = None,
    n_channels: int = DEFAULT_CHANNELS,
    seed: int = 0,
    mode: str = "concat",
    eps: float = DEFAULT_EPS,
) -> PadimModel:
    """Fit per-position Gaussians on baseline frames; returns a :class:`PadimModel`.

    ``frames_iter`` yields batches of uint8 ``N x S x S x 3`` frames (numpy or torch) or
    normalised ``B x 3 x S x S`` float tensors at the model's input size. Means and
    covariances are accumulated in float64 in one pass, so any number of frames fits in
    memory. ``layers`` default to :func:`default_layers` of the backbone depth; negative
    indices count from the end. At least two frames are needed.
    """
    net, ident = _unwrap(model)
    backbone = net.backbone
    num_layers = int(backbone.num_layers)
    resolved = _resolve_layers(
        layers if layers is not None else default_layers(num_layers), num_layers
    )
    ident["digest"] = backbone_digest(net)
    padim: PadimModel | None = None
    moments: list[_Moments] = []
    for batch in frames_iter:
        x = _to_input(batch, net)
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
                n_channels=n_channels,
                mode=mode,
                seed=seed,
                eps=eps,
                backbone=ident,
            ).to(x.device)
            positions = grid_size[0] * grid_size[1]
            moments = [_Moments(positions, c, x.device) for c in padim.group_sizes]
        padim._check_size(x)
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
        "padim fitted on %d frames: layers %s, %d channels, mode %s",
        padim.n_samples,
        list(padim.layers),
        padim.n_channels,
        padim.mode,
    )
    return padim.eval().attach(net)


# --------------------------------------------------------------------------- I/O


def save_padim(model: PadimModel, path: str | os.PathLike[str]) -> Path:
    """Write ``padim.safetensors`` (buffers) and ``padim.json`` (configuration) into ``path``."""
    from safetensors.torch import save_file

    if model.n_samples < 2:
        raise ValueError("refusing to save an anomaly model that was never fitted")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    doc = model.describe()
    with tempfile.TemporaryDirectory(dir=out, prefix=".tmp-") as tmp:
        tmp_w = Path(tmp) / WEIGHTS_FILE
        tmp_c = Path(tmp) / CONFIG_FILE
        save_file(tensors, str(tmp_w), metadata={"format": FORMAT})
        tmp_c.write_text(json.dumps(doc, indent=2) + "\n")
        tmp_w.replace(out / WEIGHTS_FILE)
        tmp_c.replace(out / CONFIG_FILE)
    return out


def load_padim(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> PadimModel:
    """Read a directory written by :func:`save_padim`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(path).expanduser()
    how = "fit one with `plumenet anomaly fit --config ... --camera ... --out DIR`"
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise AnomalyModelError(
            f"anomaly model {directory}: expected a directory holding {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}; {how}"
        )
    try:
        doc = json.loads((directory / CONFIG_FILE).read_text())
        state = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    except (OSError, json.JSONDecodeError, SafetensorError) as err:
        raise AnomalyModelError(f"cannot read anomaly model {directory}: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AnomalyModelError(
            f"{directory / CONFIG_FILE} is not a plumenet anomaly model "
            f'(expected "format": "{FORMAT}"); {how}'
        )
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise AnomalyModelError(
            f"anomaly model {directory} has format version {doc.get('format_version')}, this "
            f"plumenet reads up to {FORMAT_VERSION}; upgrade plumenet or refit the model"
        )
    try:
        model = PadimModel(
            doc["layers"],
            doc["layer_dims"],
            tuple(doc["grid_size"]),
            int(doc["input_size"]),
            n_channels=int(doc["n_channels"]),
            mode=str(doc["mode"]),
            seed=int(doc["seed"]),
            eps=float(doc["eps"]),
            backbone=dict(doc.get("backbone") or {}),
        )
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise AnomalyModelError(
            f"anomaly model {directory} is inconsistent ({err.__class__.__name__}: {err}); {how}"
        ) from err
    if "channels" in doc and list(doc["channels"]) != model.idx.tolist():
        raise AnomalyModelError(
            f"anomaly model {directory}: the channel subset in {CONFIG_FILE} differs from the "
            f"one in {WEIGHTS_FILE}; the files are mixed, {how}"
        )
    model.n_samples = int(doc.get("n_samples", 0))
    return model.to(device).eval()


# --------------------------------------------------------------------------- scorer


class AnomalyScorer:
    """A fitted :class:`PadimModel` bound to the loaded segmentation model it was fitted on.

    The backbone digest recorded at fitting time must equal that of ``loaded``'s backbone
    (checked once, here); otherwise :class:`AnomalyModelError`. Scoring reuses the loaded
    backbone: :meth:`score_frames` runs one backbone pass for the anomaly layers;
    :meth:`segment_and_score` returns the head's logits grid and the scores from a single
    pass; :meth:`score_features` takes layer grids the caller already has.
    """

    def __init__(
        self, padim: PadimModel, loaded: PlumeNet | LoadedModel, *, source: str = ""
    ) -> None:
        net, ident = _unwrap(loaded)
        expected = padim.backbone_info.get("digest", "")
        actual = backbone_digest(net)
        if expected != actual:
            fitted_with = padim.backbone_info.get("model_id") or padim.backbone_info.get(
                "backbone", "?"
            )
            where = f"anomaly model {source}" if source else "the anomaly model"
            raise AnomalyModelError(
                f"{where} was fitted on backbone {expected[:12] or '?'}... (model "
                f"{fitted_with!r}) but model {ident['model_id'] or ident['backbone']!r} has "
                f"backbone {actual[:12]}...; refit it with `plumenet anomaly fit` using the "
                "same model as the pipeline, or point `anomaly_model` at a matching one"
            )
        if padim.input_size != net.config.input_size:
            raise AnomalyModelError(
                f"{source or 'the anomaly model'} expects {padim.input_size}px frames but the "
                f"model runs at {net.config.input_size}px; refit it with this model"
            )
        self.padim = padim.to(net.device).eval().attach(net)
        self.net = net

    @property
    def layers(self) -> tuple[int, ...]:
        """Backbone layers :meth:`score_features` expects, in order."""
        return self.padim.layers

    @property
    def input_size(self) -> int:
        return self.padim.input_size

    def score_features(self, layer_grids: Sequence[torch.Tensor]) -> np.ndarray:
        """Grids of :attr:`layers` (``B x D x h x w`` each) -> float32 ``(B,)`` scores."""
        with torch.inference_mode():
            scores = self.padim.score_features(layer_grids)
        return scores.float().cpu().numpy()

    def score_frames(self, frames: Any) -> np.ndarray:
        """uint8 ``N x S x S x 3`` frames (or a normalised batch) -> float32 ``(N,)`` scores.

        One backbone pass (intermediate layers only; the head is not run).
        """
        x = _to_input(frames, self.net)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        self.padim._check_size(x)
        with torch.inference_mode():
            grids = self.net.backbone.forward_layers(x, self.layers)
        return self.score_features(grids)

    def segment_and_score(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Normalised ``B x 3 x S x S`` -> (head logits ``B x K x h x w``, float32 ``(B,)`` scores).

        One backbone pass serves both: the last block (layer-normed, as the backbone's own
        output) feeds the head, the anomaly layers feed the PaDiM model. Upsample and
        softmax the logits as the predictor does.
        """
        self.padim._check_size(x)
        last = int(self.net.backbone.num_layers)
        wanted = [*self.layers, last]
        with torch.inference_mode():
            grids = self.net.backbone.forward_layers(x, wanted)
            logits = self.net.head(grids[-1])
            scores = self.padim.score_features(grids[:-1])
        return logits, scores.float().cpu().numpy()


# --------------------------------------------------------------------------- evaluation


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[Any] | np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U); tied scores count one half.

    ``labels`` are truthy for anomalous frames. Both classes must be present and scores
    finite.
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).astype(bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (drop frames without a score first)")
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUROC needs both anomalous and normal frames; got {n_pos} anomalous, {n_neg} normal"
        )
    ranks = rankdata(s, method="average")
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def labels_from_truth(
    truth: pd.DataFrame,
    frames: pd.DataFrame,
    *,
    threshold: float = 0.01,
    tolerance: str | pd.Timedelta = "30s",
) -> pd.Series:
    """Anomaly labels for ``frames`` (columns ``time`` and/or ``path``) from a ground truth.

    ``truth`` holds either a ``label`` column (truthy = anomalous) or emission fraction
    columns (model classes ``eruption_column, ash_emissions, non_ash_emissions, lava``, the
    label classes that merge into them, or ``any_emission``): a frame is anomalous when any
    of them exceeds ``threshold`` (all NaN: no label). Rows are matched on ``path`` when
    the truth has one (exact path, else file name), otherwise on the nearest ``time``
    within ``tolerance``. Returns a float Series aligned with ``frames`` (1.0, 0.0, NaN
    where unmatched or unlabelled).
    """
    from plumenet.classes import EMISSION_CLASSES, LABEL_TO_MODEL

    if "label" in truth.columns:
        raw = truth["label"]
        if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
            text = raw.astype(str).str.strip().str.lower()
            known = {
                "1": 1.0,
                "true": 1.0,
                "yes": 1.0,
                "anomalous": 1.0,
                "anomaly": 1.0,
                "0": 0.0,
                "false": 0.0,
                "no": 0.0,
                "normal": 0.0,
            }
            bad = sorted(set(text) - set(known))
            if bad:
                raise ValueError(
                    f"truth column 'label' has values {bad[:3]}; use 1/0, true/false or "
                    "anomalous/normal"
                )
            value = text.map(known).astype(float)
        else:
            value = (raw.astype(float) > 0).astype(float)
    else:
        names = set(EMISSION_CLASSES) | {"any_emission"}
        names |= {k for k, v in LABEL_TO_MODEL.items() if v in EMISSION_CLASSES}
        cols = [c for c in truth.columns if c in names]
        if not cols:
            raise ValueError(
                "truth has neither a 'label' column nor emission fraction columns "
                f"({', '.join(sorted(names))}); columns: {', '.join(map(str, truth.columns))}"
            )
        peak = truth[cols].astype(float).max(axis=1)  # NaN where every fraction is NaN
        value = (peak > threshold).astype(float).where(peak.notna())
    labelled = pd.DataFrame({"value": value.to_numpy()})
    if "path" in truth.columns and "path" in frames.columns:
        lookup = dict(zip(truth["path"].astype(str), labelled["value"], strict=True))
        paths = frames["path"].astype(str)
        out = paths.map(lookup)
        if out.isna().any():  # truth paths relative to the archive: match file names
            by_name = {Path(k).name: v for k, v in lookup.items()}
            out = out.fillna(paths.map(lambda p: by_name.get(Path(p).name, np.nan)))
        return pd.Series(out.to_numpy(dtype=float), index=frames.index, name="label")
    if "time" not in truth.columns or "time" not in frames.columns:
        raise ValueError("truth and frames must share a 'path' or a 'time' column to be matched")
    labelled["time"] = (
        pd.to_datetime(truth["time"], utc=True).dt.as_unit("ns").reset_index(drop=True)
    )
    labelled = labelled.sort_values("time")
    left = pd.DataFrame(
        {
            "time": pd.to_datetime(frames["time"], utc=True)
            .dt.as_unit("ns")
            .reset_index(drop=True),
            "pos": np.arange(len(frames)),
        }
    ).sort_values("time")
    merged = pd.merge_asof(
        left, labelled, on="time", direction="nearest", tolerance=pd.Timedelta(tolerance)
    ).sort_values("pos")
    return pd.Series(merged["value"].to_numpy(dtype=float), index=frames.index, name="label")
