"""Scoring frames: a fitted PaDiM model bound to the segmentation model it was fitted on.

:class:`AnomalyScorer` checks once that the loaded model's backbone is the one the
statistics were fitted with (by digest) and at the same input size, then scores uint8
frames, precomputed layer grids, or segments and scores in a single backbone pass. It is
what :class:`~plumenet.inference.predictor.Predictor` takes as its ``scorer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from plumenet.anomaly.features import AnomalyModelError, backbone_digest, to_input, unwrap_model
from plumenet.anomaly.model import PadimModel
from plumenet.model.loaded import LoadedModel
from plumenet.model.network import PlumeNet

__all__ = ["AnomalyScorer"]


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
        net, ident = unwrap_model(loaded)
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
        x = to_input(frames, self.net)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        self.padim.check_size(x)
        with torch.inference_mode():
            grids = self.net.backbone.forward_layers(x, self.layers)
        return self.score_features(grids)

    def segment_and_score(self, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Normalised ``B x 3 x S x S`` -> (head logits ``B x K x h x w``, float32 ``(B,)`` scores).

        One backbone pass serves both: the last block (layer-normed, as the backbone's own
        output) feeds the head, the anomaly layers feed the PaDiM model. Upsample and
        softmax the logits as the predictor does.
        """
        self.padim.check_size(x)
        last = int(self.net.backbone.num_layers)
        wanted = [*self.layers, last]
        with torch.inference_mode():
            grids = self.net.backbone.forward_layers(x, wanted)
            logits = self.net.head(grids[-1])
            scores = self.padim.score_features(grids[:-1])
        return logits, scores.float().cpu().numpy()
