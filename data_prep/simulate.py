"""Physiological cohort simulator: finger-PPG segments whose pulse shape ages as docs/DATA.md describes.

Numbers come from Charlton et al. 2019 (Pulse Wave Database age-group means for stiffness index, reflection
index and heart rate) and Choi 2020 (SDNN vs age); docs/DATA.md lists them with their sources. Each row
(segment) draws its randomness from a counter-based generator keyed by (seed, row), so any subset of rows can be
produced in any order, in any process, and always comes out bit-identical: the simulator streams.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_prep.settings import DataConfig, SimulateConfig

AGE_GRID = np.array([25.0, 35.0, 45.0, 55.0, 65.0, 75.0])
SI_MEAN = np.array([6.22, 6.71, 7.50, 8.05, 8.93, 10.26])   # finger-PPG stiffness index, m/s
SI_SD = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.4])            # grows with age (1.0 at 25 to 3.4 at 75)
RI_MEAN = np.array([0.18, 0.21, 0.27, 0.31, 0.36, 0.41])    # reflection index, diastolic/systolic
HR_MEAN = np.array([73.0, 76.3, 77.0, 77.0, 76.3, 74.4])    # bpm, SD about 9 in every group
HR_SD = 9.0


def age_curve(age: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Interpolate an age-group table; beyond 25-75 extend the end slopes at half strength."""
    age = np.asarray(age, dtype=np.float64)
    out = np.interp(age, AGE_GRID, values)
    lo_slope = (values[1] - values[0]) / (AGE_GRID[1] - AGE_GRID[0])
    hi_slope = (values[-1] - values[-2]) / (AGE_GRID[-1] - AGE_GRID[-2])
    out = np.where(age < AGE_GRID[0], values[0] + 0.5 * lo_slope * (age - AGE_GRID[0]), out)
    return np.where(age > AGE_GRID[-1], values[-1] + 0.5 * hi_slope * (age - AGE_GRID[-1]), out)


def simulate_subjects(sim: SimulateConfig, seed: int) -> pd.DataFrame:
    """Draw the cohort: labels plus the hidden physiology (si, ri, sdnn) that drives each waveform."""
    rng = np.random.default_rng([seed, 0x5B])
    n = sim.n_subjects
    age = rng.uniform(sim.age_min, sim.age_max, n)
    sex = rng.integers(0, 2, n).astype(np.float64)                     # 0 = male, 1 = female
    height = np.where(sex == 1, rng.normal(163.0, 7.0, n), rng.normal(177.0, 7.5, n))
    bmi = np.clip(rng.normal(24.0 + 0.06 * (age - 18), 4.0, n), 16.0, 50.0)
    weight = bmi * (height / 100.0) ** 2
    hr = np.clip(age_curve(age, HR_MEAN) + HR_SD * rng.standard_normal(n), 45.0, 120.0)
    si = np.clip(age_curve(age, SI_MEAN) + age_curve(age, SI_SD) * rng.standard_normal(n), 4.0, 20.0)
    ri = np.clip(age_curve(age, RI_MEAN) + 0.06 * rng.standard_normal(n), 0.05, 0.9)
    sdnn = np.clip((-0.502 * age + 53.9) * rng.lognormal(0.0, 0.25, n), 8.0, 120.0)   # ms, Choi 2020
    return pd.DataFrame({
        "subject_id": [f"sim{i:06d}" for i in range(n)],
        "age": age, "sex": sex, "height": height, "weight": weight, "bmi": bmi, "hr": hr,
        "si": si, "ri": ri, "sdnn": sdnn,
    })


def segment_table(subjects: pd.DataFrame, segments_per_subject: int) -> pd.DataFrame:
    """One row per segment: the subject's labels and the global row index that seeds its waveform."""
    rows = subjects.loc[subjects.index.repeat(segments_per_subject)].reset_index(drop=True)
    rows.insert(0, "row", np.arange(len(rows), dtype=np.int64))
    return rows


_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, elementwise (uint64 arithmetic wraps as it should)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _row_words(seed: int, rows: np.ndarray, stream: int, count: int) -> np.ndarray:
    """uint64 [len(rows), count], a pure function of (seed, row, stream, index): a row comes out the same in any
    batch, order or process (a counter-based generator, vectorized)."""
    key = _mix(_mix(np.full(1, seed, np.uint64) + np.uint64(stream) * _GOLDEN) ^ rows.astype(np.uint64))
    return _mix(key[:, None] + np.arange(1, count + 1, dtype=np.uint64)[None, :] * _GOLDEN)


def row_uniforms(seed: int, rows: np.ndarray, stream: int, count: int) -> np.ndarray:
    """Uniform numbers in (0, 1), float64 [len(rows), count], from `_row_words`."""
    return ((_row_words(seed, rows, stream, count) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def row_normals(seed: int, rows: np.ndarray, stream: int, count: int) -> np.ndarray:
    """Standard normal float32 [len(rows), count] (count even): Box-Muller on the two 32-bit halves of each of
    count / 2 `_row_words`."""
    x = _row_words(seed, rows, stream, count // 2)
    scale = np.float32(2.0 ** -32)
    u1 = ((x >> np.uint64(32)).astype(np.float32) + np.float32(0.5)) * scale     # in (0, 1): log is finite
    angle = (x & np.uint64(0xFFFFFFFF)).astype(np.float32) * (scale * np.float32(2 * np.pi))
    r = np.sqrt(np.float32(-2.0) * np.log(u1))
    return np.concatenate([r * np.cos(angle), r * np.sin(angle)], axis=1)


def _pulse(tau: np.ndarray, t_sys, w_sys, t_dia, w_dia, ri, notch) -> np.ndarray:
    """One beat as a function of time since onset: systolic + reflected/diastolic wave - dicrotic notch
    (Gaussians, computed in place: this is most of the simulator's arithmetic)."""
    out, tmp = np.empty_like(tau), np.empty_like(tau)
    waves = ((t_sys, w_sys, None), (t_dia, w_dia, ri), (0.5 * (t_sys + t_dia) + 0.25 * w_sys, 0.35 * w_sys, -notch))
    for k, (center, width, weight) in enumerate(waves):
        np.subtract(tau, center, out=tmp)
        np.multiply(tmp, np.float32(1.0) / width, out=tmp)
        np.square(tmp, out=tmp)
        np.multiply(tmp, np.float32(-0.5), out=tmp)
        np.exp(tmp, out=tmp)
        if weight is not None:
            np.multiply(tmp, weight, out=tmp)
        if k:
            np.add(out, tmp, out=out)
        else:
            out[...] = tmp
    return out


BLOCK = 256   # rows simulated at a time: a block's float32 temporaries stay in the CPU cache


def simulate_signals(rows: pd.DataFrame, sim: SimulateConfig, data: DataConfig, seed: int) -> np.ndarray:
    """Raw PPG for the given segment rows, float32 [len(rows), signal_length]; rows from segment_table.
    Vectorized over rows in float32; every random draw is a function of (seed, row), not of the batch."""
    out = np.empty((len(rows), data.signal_length), np.float32)
    for start in range(0, len(rows), BLOCK):
        out[start:start + BLOCK] = _simulate_block(rows.iloc[start:start + BLOCK], sim, data, seed)
    return out


def _simulate_block(rows: pd.DataFrame, sim: SimulateConfig, data: DataConfig, seed: int) -> np.ndarray:
    length, fs = data.signal_length, data.fs
    f32 = np.float32
    t = (np.arange(length) / fs).astype(f32)
    row_ids = rows["row"].to_numpy()
    draws = row_uniforms(seed, row_ids, 0, 12).astype(f32)
    noise = row_normals(seed, row_ids, 1, length + length % 2)[:, :length]
    col = lambda name: rows[name].to_numpy(dtype=np.float64).astype(f32)[:, None]  # noqa: E731
    age, hr, si, ri, sdnn = col("age"), col("hr"), col("si"), col("ri"), col("sdnn")
    height_m = col("height") / f32(100.0)
    d = lambda k: draws[:, k:k + 1]  # noqa: E731
    two_pi = f32(2 * np.pi)

    # Heart rhythm: mean rate, respiratory sinus arrhythmia (weaker with age) and slow HRV so that
    # the beat-interval jitter has roughly the subject's SDNN.
    f_resp = f32(0.2) + f32(0.1) * d(0)                               # 12-18 breaths/min
    rr = f32(60.0) / hr
    rel_jitter = (sdnn / f32(1000.0)) / rr
    rsa = np.clip(f32(0.6) * rel_jitter * (f32(1.4) - age / f32(100.0)), 0.0, 0.15).astype(f32)
    slow = rel_jitter * np.sin(two_pi * ((f32(0.05) + f32(0.08) * d(1)) * t + d(2)))
    rate = (hr / f32(60.0)) * (f32(1.0) + rsa * np.sin(two_pi * (f_resp * t + d(3))) + f32(0.5) * slow)
    phase = d(4) + np.cumsum(rate, axis=1) / f32(fs)
    period = f32(1.0) / rate
    tau = (phase - np.floor(phase)) * period                          # seconds since beat onset

    # Beat shape: systolic upstroke lengthens with age; the diastolic peak follows at height/SI
    # (stiffness index definition) with amplitude RI; the dicrotic notch fades with age.
    w_sys = f32(0.045) + f32(0.00035) * (age - f32(18.0))
    t_sys = f32(0.05) + f32(2.2) * w_sys
    t_dia = t_sys + np.clip(height_m / si, 0.10, 0.40).astype(f32)
    w_dia = f32(0.09) + f32(0.0004) * (age - f32(18.0))
    notch = np.clip(f32(0.12) * (f32(1.0) - (age - f32(18.0)) / f32(70.0)), 0.0, None).astype(f32)
    shape = (_pulse(tau, t_sys, w_sys, t_dia, w_dia, ri, notch)
             + _pulse(tau + period, t_sys, w_sys, t_dia, w_dia, ri, notch))   # tail of the previous beat

    # Respiratory baseline wander and amplitude modulation, sensor gain, noise.
    resp = np.sin(two_pi * (f_resp * t + d(5)))
    am = f32(1.0) + f32(0.08) * resp
    baseline = f32(0.12) * np.sin(two_pi * (f_resp * t + d(6)))
    gain = f32(0.5) + f32(1.5) * d(7)
    x = gain * (am * shape + baseline + f32(sim.noise_std) * noise)

    # Occasional motion artifact; half of those also saturate the sensor (validation quarantines them).
    hit = d(8)[:, 0] < sim.artifact_rate
    if hit.any():
        start = (d(9)[:, 0] * (length - 200)).astype(int)
        bump = (2.0 * np.sin(np.linspace(0, np.pi, 150))).astype(f32)
        for i in np.flatnonzero(hit):
            seg = slice(start[i], start[i] + 150)
            x[i, seg] += gain[i, 0] * bump * (1 if d(10)[i, 0] < 0.5 else -1)
            if d(11)[i, 0] < 0.5:
                x[i] = np.clip(x[i], None, np.percentile(x[i], 80))
    return x.astype(np.float32, copy=False)
