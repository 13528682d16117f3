"""Per-signal normalization; the method is recorded in the manifest and fixes the model's output range."""
from __future__ import annotations

import numpy as np

EPS = 1e-8


def normalize(signals: np.ndarray, method: str) -> np.ndarray:
    """maxabs -> [-1, 1] (reference study), minmax -> [0, 1], zscore -> mean 0 / std 1; per row."""
    x = signals.astype(np.float32, copy=False)
    if method == "maxabs":
        return x / np.maximum(np.abs(x).max(axis=1, keepdims=True), EPS)
    if method == "minmax":
        lo = x.min(axis=1, keepdims=True)
        return (x - lo) / np.maximum(x.max(axis=1, keepdims=True) - lo, EPS)
    if method == "zscore":
        return (x - x.mean(axis=1, keepdims=True)) / np.maximum(x.std(axis=1, keepdims=True), EPS)
    raise ValueError(f"unknown normalization {method!r}")

