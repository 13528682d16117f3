"""The per-window quality verdict of conditioned signals: rails and flat stretches on the recording's own scale
(at read time), then beats, heart rate and template matching (neurokit2), before normalization."""
from __future__ import annotations

import warnings

import numpy as np


def raw_reason(rail_share: float, jump: bool, flat_s: float, quality) -> str:
    """The raw-scale verdict of one window ('' = fine): 'clipped' (on a rail, or a rail-to-rail jump) or 'flat'."""
    if jump or rail_share >= quality.clip_fraction:
        return "clipped"
    return "flat" if flat_s >= quality.flat_s else ""


def beat_reason(window: np.ndarray, fs: float, quality) -> str:
    """'' for a window of clean beats, else no_beats / implausible_hr / low_quality, or quality_check_failed when
    neurokit2 itself fails on the window (one window the library cannot judge is quarantined, never the run)."""
    import neurokit2 as nk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            peaks = np.asarray(nk.ppg_findpeaks(window, sampling_rate=int(round(fs)))["PPG_Peaks"])
        except (ValueError, IndexError):
            return "no_beats"
        except Exception:   # noqa: BLE001 - any failure inside the library is that window's verdict
            return "quality_check_failed"
        if len(peaks) < 3:
            return "no_beats"
        hr = 60.0 * fs / float(np.median(np.diff(peaks)))
        if not quality.hr_min <= hr <= quality.hr_max:
            return "implausible_hr"
        try:
            index = np.asarray(nk.ppg_quality(window, peaks=peaks, sampling_rate=int(round(fs)),
                                              method="templatematch"))
        except Exception:   # noqa: BLE001 - e.g. "cannot convert float NaN to integer" on some 3-beat windows
            return "quality_check_failed"
    return "low_quality" if not np.nanmean(index) >= quality.min_template_corr else ""


def beat_reasons(windows: np.ndarray, fs: float, quality) -> np.ndarray:
    return np.array([beat_reason(w, fs, quality) for w in np.asarray(windows, dtype=np.float64)], dtype=object)
