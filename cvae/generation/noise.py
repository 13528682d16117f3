"""The data's white sensor-noise level, estimated where the pulse has no power; generation adds it back."""
from __future__ import annotations

import numpy as np


def noise_floor_sigma(signals: np.ndarray, fs: float, cutoff_hz: float = 25.0) -> float:
    """Std of white sensor noise, estimated from the band above `cutoff_hz` (where the pulse has no power):
    the median over signals of the high-band std, scaled up by the share of the band it covers."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, cutoff_hz, btype="highpass", fs=fs, output="sos")
    high = sosfiltfilt(sos, signals.astype(np.float64), axis=1)
    return float(np.median(high.std(axis=1)) / np.sqrt(1.0 - cutoff_hz / (fs / 2)))
