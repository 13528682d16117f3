"""Phase-invariant waveform descriptors for the evaluation models."""
from __future__ import annotations

import numpy as np

N_BINS = 160   # rfft bins kept: 0-19.5 Hz at 125 Hz x 1024 samples, where the pulse harmonics live


def spectral_features(signals: np.ndarray) -> np.ndarray:
    """log magnitude spectrum of each (mean-removed, unit-energy) signal: independent of where beats start."""
    x = signals - signals.mean(axis=1, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    return np.log(np.abs(np.fft.rfft(x, axis=1))[:, 1:N_BINS + 1] + 1e-6).astype(np.float32)


def beat_templates(signals: np.ndarray, fs: float, before: float = 0.25, after: float = 0.75) -> np.ndarray:
    """Mean beat of each signal, aligned on its systolic peaks: [n, (before + after) * fs]; NaN rows where
    no beat was found. Peaks: scipy find_peaks with a 0.33 s refractory distance and a prominence of
    30% of the 5-95 percentile range."""
    from scipy.signal import find_peaks

    b, a = int(round(before * fs)), int(round(after * fs))
    out = np.full((len(signals), a + b), np.nan, np.float32)
    for i, x in enumerate(signals):
        spread = np.percentile(x, 95) - np.percentile(x, 5)
        peaks, _ = find_peaks(x, distance=max(1, int(0.33 * fs)), prominence=0.3 * spread)
        peaks = peaks[(peaks >= b) & (peaks + a <= len(x))]
        if len(peaks):
            out[i] = np.mean([x[p - b:p + a] for p in peaks], axis=0)
    return out
