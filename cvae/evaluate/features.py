"""Phase-invariant waveform descriptors for the evaluation models."""
from __future__ import annotations

import numpy as np

N_BINS = 160   # rfft bins kept: 0-19.5 Hz at 125 Hz x 1024 samples, where the pulse harmonics live


def spectral_features(signals: np.ndarray) -> np.ndarray:
    """log magnitude spectrum of each (mean-removed, unit-energy) signal: independent of where beats start."""
    x = signals - signals.mean(axis=1, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    return np.log(np.abs(np.fft.rfft(x, axis=1))[:, 1:N_BINS + 1] + 1e-6).astype(np.float32)
