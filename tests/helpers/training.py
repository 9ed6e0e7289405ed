"""Small training data and models for tests of :mod:`plumenet.training`.

- :func:`tiny_config`: the ``tiny`` architecture at a small input size (:data:`SIZE`
  px, a 4 x 4 patch grid), fast enough to train for a few epochs on a CPU.
- :func:`scenes`: an :class:`~plumenet.training.datasets.ArrayDataset` of noisy blue sky
  over brown land with a red column, easy to learn.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from plumenet.model.network import ModelConfig
from plumenet.model.registry import MODEL_CONFIGS
from plumenet.training.datasets import ArrayDataset

__all__ = ["SIZE", "scenes", "tiny_config"]

#: Input size of :func:`tiny_config` and image size of :func:`scenes`.
SIZE = 56


def tiny_config(size: int = SIZE) -> ModelConfig:
    """The ``tiny`` architecture with input (and backbone image) size ``size``."""
    base = MODEL_CONFIGS["tiny"]
    return dataclasses.replace(
        base, input_size=size, backbone={**base.backbone, "image_size": size}
    )


def scenes(n: int, seed: int, size: int = SIZE) -> ArrayDataset:
    """Blue sky (0) over brown land (1) with a red column (2): easy to learn."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        horizon = int(rng.integers(size // 2, 3 * size // 4))
        images[i, :horizon] = (70, 130, 200)
        images[i, horizon:] = (110, 80, 50)
        labels[i, horizon:] = 1
        x0 = int(rng.integers(0, size - 16))
        top = int(rng.integers(0, horizon - 12))
        images[i, top:horizon, x0 : x0 + 14] = (200, 30, 30)
        labels[i, top:horizon, x0 : x0 + 14] = 2
        images[i] = np.clip(images[i] + rng.normal(0, 6, images[i].shape), 0, 255).astype(np.uint8)
    return ArrayDataset(images, labels)
