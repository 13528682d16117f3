"""What evaluation compares: phase-invariant spectra and pulse-wave features of the peak-aligned mean beat."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cvae.beats import BEAT_BEFORE, mean_beat, systolic_peaks

N_BINS = 160   # rfft bins kept: 0-19.5 Hz at 125 Hz x 1024 samples, where the pulse harmonics live


def spectral_features(signals: np.ndarray) -> np.ndarray:
    """log magnitude spectrum of each (mean-removed, unit-energy) signal: independent of where beats start."""
    x = signals - signals.mean(axis=1, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
    return np.log(np.abs(np.fft.rfft(x, axis=1))[:, 1:N_BINS + 1] + 1e-6).astype(np.float32)


FEATURES = ("hr", "pulse_width", "reflection_index", "stiffness_proxy", "b_a", "d_a")


def waveform_features(signals: np.ndarray, fs: float) -> pd.DataFrame:
    """Per-signal pulse-wave features from the peak-aligned mean beat (NaN where undefined):
    hr (bpm, from peak intervals), pulse_width (s, at half height above the foot), reflection_index
    (largest later peak 0.1-0.5 s after the systolic peak / systolic height, both above the foot),
    stiffness_proxy (1 / systolic-to-diastolic delay, 1/s; SI without the height), b_a and d_a
    (second-derivative waves of the beat, Takazawa 1998)."""
    from scipy.signal import argrelextrema

    p = int(round(BEAT_BEFORE * fs))   # the systolic peak's index in the mean beat
    rows = []
    for x in signals:
        f = dict.fromkeys(FEATURES, np.nan)
        peaks = systolic_peaks(x, fs)
        beat = mean_beat(x, peaks, fs)
        if len(peaks) > 1:
            f["hr"] = 60.0 * fs / float(np.median(np.diff(peaks)))
        if not np.isnan(beat[0]):
            foot = beat[:p].min()
            height = beat[p] - foot
            above = np.flatnonzero(beat - foot >= 0.5 * height)
            f["pulse_width"] = (above[-1] - above[0]) / fs if len(above) else np.nan
            lo, hi = p + int(0.1 * fs), min(len(beat), p + int(0.5 * fs))
            later = argrelextrema(beat[lo:hi], np.greater)[0]
            if len(later) and height > 0:
                k = lo + later[np.argmax(beat[lo:hi][later])]
                f["reflection_index"] = (beat[k] - foot) / height
                f["stiffness_proxy"] = fs / (k - p)
            apg = np.gradient(np.gradient(beat))
            a_idx = int(np.argmax(apg[:p]))
            waves = [a_idx]
            for kind in (np.less, np.greater, np.less):   # b (min), c (max), d (min) after a
                ext = argrelextrema(apg[waves[-1] + 1:], kind)[0]
                if not len(ext):
                    break
                waves.append(waves[-1] + 1 + int(ext[0]))
            a = apg[a_idx]
            if a > 0 and len(waves) >= 2:
                f["b_a"] = apg[waves[1]] / a
            if a > 0 and len(waves) == 4:
                f["d_a"] = apg[waves[3]] / a
        rows.append(f)
    return pd.DataFrame(rows, columns=list(FEATURES))
