"""The codes every layer shares: frame status values and the uint8 probability encoding.

A leaf module (numpy only): the predictor encodes, the store writes and reads, the
catalogue interprets, and none of them has to import another layer to agree on a value.
"""

from __future__ import annotations

import numpy as np

#: ``status`` values of a slot.
STATUS_NONE, STATUS_OK, STATUS_UNREADABLE, STATUS_UNUSABLE = 0, 1, 2, 3
STATUS_MEANINGS = "none ok unreadable unusable"
#: ``model`` value of a slot no model has written.
MODEL_NONE = 255
#: ``probability`` is stored as round(p * 254); 255 is "no frame".
PROBABILITY_SCALE = 254
PROBABILITY_FILL = 255


def quantize_probability(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] (NaN: none) -> stored uint8 (``round(p * 254)``, 255 = none)."""
    p = np.asarray(prob, dtype=np.float32)
    q = np.rint(np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * PROBABILITY_SCALE)
    return np.where(np.isnan(p), PROBABILITY_FILL, q).astype(np.uint8)


def dequantize_probability(q: np.ndarray) -> np.ndarray:
    """Stored uint8 -> float32 probabilities; 255 -> NaN."""
    arr = np.asarray(q)
    out = arr.astype(np.float32) / np.float32(PROBABILITY_SCALE)
    out[arr == PROBABILITY_FILL] = np.nan
    return out
