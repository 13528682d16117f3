"""The decoder's spectral equalizer: a fixed zero-phase filter that gives generated signals the training data's
average spectrum inside the data's signal band.

A Gaussian-likelihood decoder fits the strong low harmonics of the pulse first and smooths the weak upper ones
(the upstroke and the notch): its reconstructions of the training signals have less power there than the signals
themselves. After training, the amplitude gain sqrt(P_data / P_generated) is measured per GRID_HZ on training
signals and their reconstructions plus the sensor noise generation adds (mean Hann-windowed power spectra), where
the data's power is within BAND_DB of its peak (elsewhere 1: noise and the filtered stopband are left alone),
limited to GAIN_LIMITS. Generation applies it to the decoder's output, forward and backward (an FIR of sqrt(gain),
so the pair has the gain and no phase)."""
from __future__ import annotations

import numpy as np
from scipy.signal import filtfilt, firwin2

GRID_HZ = 0.5            # gain resolution
BAND_DB = 40.0           # the signal band: where the data's mean power is within this of its peak
GAIN_LIMITS = (0.5, 2.0)  # the correction is bounded: a decoder further off is not fixed by a filter


def _power(signals: np.ndarray) -> np.ndarray:
    x = signals - signals.mean(axis=1, keepdims=True)
    return (np.abs(np.fft.rfft(x * np.hanning(x.shape[1]), axis=1)) ** 2).mean(axis=0)


def measure_equalizer(signals: np.ndarray, reconstructions: np.ndarray, fs: float, noise_sigma: float = 0.0) -> dict:
    """{"hz": grid from 0 to fs/2, "gain": amplitude gain at each} from training signals and their reconstructions,
    to which generation adds white noise of `noise_sigma` (its expected power is added here)."""
    f = np.fft.rfftfreq(signals.shape[1], 1.0 / fs)
    data = _power(signals.astype(np.float64))
    recon = _power(reconstructions.astype(np.float64)) + noise_sigma ** 2 * np.sum(np.hanning(signals.shape[1]) ** 2)
    in_band = data >= data.max() * 10 ** (-BAND_DB / 10)
    hz = np.arange(0.0, fs / 2 + 1e-9, GRID_HZ)
    gain = np.ones_like(hz)
    for i, h in enumerate(hz):
        near = np.abs(f - h) <= GRID_HZ / 2
        if near.any() and in_band[near].all():
            gain[i] = np.sqrt(data[near].sum() / max(recon[near].sum(), 1e-30))
    return {"hz": hz.round(6).tolist(), "gain": np.clip(gain, *GAIN_LIMITS).round(6).tolist()}


def equalizer_problem(eq, fs: float) -> str | None:
    """What is wrong with an equalizer read from a model's meta.json (None: sound or absent)."""
    if eq is None:
        return None
    try:
        hz, gain = np.asarray(eq["hz"], dtype=np.float64), np.asarray(eq["gain"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        return f"equalizer: {type(exc).__name__}: {exc}"
    ok = (isinstance(eq, dict) and set(eq) == {"hz", "gain"} and hz.ndim == 1 and 2 <= len(hz) <= 100_000
          and hz.shape == gain.shape and np.isfinite(hz).all() and hz[0] == 0 and abs(hz[-1] - fs / 2) < 1e-3
          and (np.diff(hz) > 0).all() and np.isfinite(gain).all()
          and (gain >= GAIN_LIMITS[0]).all() and (gain <= GAIN_LIMITS[1]).all())
    return None if ok else (f"equalizer: needs 'hz' rising from 0 to fs/2 = {fs / 2:g} and a 'gain' of "
                            f"{GAIN_LIMITS[0]}-{GAIN_LIMITS[1]} at each")


def equalizer_fir(eq: dict, fs: float) -> np.ndarray:
    """FIR taps with sqrt(gain), about 2 GRID_HZ resolution: applied forward and backward it has the measured gain."""
    hz = np.asarray(eq["hz"], dtype=np.float64)
    hz[-1] = fs / 2   # firwin2 needs the grid to end exactly at Nyquist
    return firwin2(int(fs / (4 * GRID_HZ)) * 2 + 1, hz, np.sqrt(np.asarray(eq["gain"], dtype=np.float64)), fs=fs)


def equalize(taps: np.ndarray, signals: np.ndarray) -> np.ndarray:
    """Zero-phase filtering of each row of `signals` with `taps`."""
    padlen = min(3 * len(taps), signals.shape[1] - 1)
    return filtfilt(taps, [1.0], signals.astype(np.float64), axis=1, padlen=padlen).astype(np.float32)
