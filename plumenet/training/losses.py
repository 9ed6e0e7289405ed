"""The training losses: class-weighted cross-entropy, Tversky, or their sum.

Logits are ``B x C x H x W``, targets ``B x H x W`` int64 model-class indices where
:data:`plumenet.training.datasets.IGNORE_INDEX` (unlabelled) pixels count for nothing.
``weights`` (one per class) weigh the cross-entropy terms and the per-class Tversky
terms alike. :func:`segmentation_loss` builds the loss a
:class:`plumenet.training.loop.TrainConfig` names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from plumenet.training.datasets import IGNORE_INDEX

__all__ = ["LOSSES", "LossName", "segmentation_loss", "tversky_loss"]

LossName = Literal["ce", "tversky", "ce+tversky"]
#: The loss names :func:`segmentation_loss` knows.
LOSSES: tuple[LossName, ...] = ("ce", "tversky", "ce+tversky")


def tversky_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float, weights: torch.Tensor
) -> torch.Tensor:
    """1 - Tversky index, averaged over classes present in truth or prediction (weighted).

    ``alpha`` weighs false positives, ``beta`` false negatives.
    """
    c = logits.shape[1]
    valid = (target != IGNORE_INDEX).unsqueeze(1).to(logits.dtype)
    probs = torch.softmax(logits, dim=1) * valid
    onehot = F.one_hot(target.clamp(max=c - 1), c).permute(0, 3, 1, 2).to(logits.dtype) * valid
    dims = (0, 2, 3)
    tp = (probs * onehot).sum(dims)
    fp = (probs * (1 - onehot)).sum(dims)
    fn = ((1 - probs) * onehot).sum(dims)
    eps = 1e-6
    index = (tp + eps) / (tp + alpha * fp + beta * fn + eps)
    w = weights.to(logits.dtype)
    return ((1 - index) * w).sum() / w.sum()


def segmentation_loss(
    kind: LossName, weights: torch.Tensor, alpha: float, beta: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(logits, target)`` of ``kind`` (one of :data:`LOSSES`) with class ``weights``.

    The cross-entropy term is left out of a batch without a labelled pixel (it would be
    NaN); ``alpha``/``beta`` are the Tversky weights of :func:`tversky_loss`.
    """

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        if kind in ("ce", "ce+tversky") and (target != IGNORE_INDEX).any():
            total = total + F.cross_entropy(
                logits, target, weight=weights, ignore_index=IGNORE_INDEX
            )
        if kind in ("tversky", "ce+tversky"):
            total = total + tversky_loss(logits, target, alpha, beta, weights)
        return total

    return loss
