"""Beats in a PPG window: systolic peaks (neurokit2), peak-aligned mean beats, an independent clean-beat check,
and age decades; shared by generation's figure, evaluation and the quality tests."""
from __future__ import annotations

import numpy as np

BEAT_BEFORE, BEAT_AFTER = 0.25, 0.75   # s of each beat window before and after its systolic peak


def decade_of(ages: np.ndarray) -> np.ndarray:
    """Age decade of each age (20 for 20-29.99, ...), as ints."""
    return (np.asarray(ages) // 10 * 10).astype(int)


def systolic_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the systolic peaks: neurokit2's detector (Elgendi et al. 2013) on its band-passed
    (0.5-8 Hz, zero-phase) copy of the signal; empty for flat or non-finite signals."""
    import neurokit2 as nk

    try:
        cleaned = nk.ppg_clean(signal, sampling_rate=fs, method="elgendi")
        return np.asarray(nk.ppg_findpeaks(cleaned, sampling_rate=fs, method="elgendi")["PPG_Peaks"], dtype=int)
    except (IndexError, ValueError):
        return np.array([], dtype=int)


def mean_beat(signal: np.ndarray, peaks: np.ndarray, fs: float, before: float = BEAT_BEFORE,
              after: float = BEAT_AFTER) -> np.ndarray:
    """Mean of the signal's windows [peak - before, peak + after) s around its systolic peaks; NaN if none fits."""
    b, a = int(round(before * fs)), int(round(after * fs))
    peaks = peaks[(peaks >= b) & (peaks + a <= len(signal))]
    if not len(peaks):
        return np.full(a + b, np.nan, np.float32)
    return np.mean([signal[p - b:p + a] for p in peaks], axis=0).astype(np.float32)


def beat_templates(signals: np.ndarray, fs: float, before: float = BEAT_BEFORE,
                   after: float = BEAT_AFTER) -> np.ndarray:
    """Mean beat of each signal, aligned on its systolic peaks: [n, (before + after) * fs]; NaN rows where
    no beat was found."""
    return np.stack([mean_beat(x, systolic_peaks(x, fs), fs, before, after) for x in signals])


def clean_beats(signal: np.ndarray, fs: float) -> tuple[float, float]:
    """(median beat-to-template correlation, heart rate in bpm) of one window, found independently of prep's
    neurokit2 verdict: scipy peaks at least 1/3 s apart with a prominence of a third of the 5-95% range, beats
    cut from 0.3 to 0.7 median intervals around each peak, template = their mean. (nan, nan) with < 3 beats."""
    from scipy.signal import find_peaks

    x = np.asarray(signal, dtype=np.float64)
    lo, hi = np.percentile(x, [5, 95])
    peaks, _ = find_peaks(x, distance=max(1, int(fs / 3)), prominence=(hi - lo) / 3)
    if len(peaks) < 3:
        return np.nan, np.nan
    rr = float(np.median(np.diff(peaks)))
    b, a = int(0.3 * rr), int(0.7 * rr)
    beats = np.array([x[p - b:p + a] for p in peaks if p - b >= 0 and p + a <= len(x)])
    if len(beats) < 3:
        return np.nan, 60.0 * fs / rr
    template = beats.mean(axis=0)
    corr = [np.corrcoef(beat, template)[0, 1] for beat in beats]
    return float(np.median(corr)), 60.0 * fs / rr


def clean_beat_share(signals: np.ndarray, fs: float, min_corr: float = 0.8, hr: tuple = (35.0, 180.0)) -> float:
    """Share of windows with clean beats: template correlation >= min_corr and a heart rate inside `hr`."""
    checks = [clean_beats(x, fs) for x in signals]
    return float(np.mean([c >= min_corr and hr[0] <= h <= hr[1] for c, h in checks])) if checks else float("nan")
