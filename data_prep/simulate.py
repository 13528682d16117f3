"""Physiological cohort simulator: finger-PPG segments whose pulse shape ages as docs/DATA.md describes.

Numbers come from Charlton et al. 2019 (Pulse Wave Database age-group means for stiffness index, reflection
index and heart rate) and Choi 2020 (SDNN vs age); docs/DATA.md lists them with their sources. Each row
(segment) is simulated from its own seeded generator, so any subset of rows can be produced in
any order, in any process, and always comes out bit-identical: the simulator streams.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_prep.config import DataConfig, SimulateConfig

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


def _pulse(tau: np.ndarray, t_sys, w_sys, t_dia, w_dia, ri, notch) -> np.ndarray:
    """One beat as a function of time since onset: systolic + reflected/diastolic wave - dicrotic notch."""
    sys = np.exp(-0.5 * ((tau - t_sys) / w_sys) ** 2)
    dia = ri * np.exp(-0.5 * ((tau - t_dia) / w_dia) ** 2)
    dip = notch * np.exp(-0.5 * ((tau - 0.5 * (t_sys + t_dia) - 0.25 * w_sys) / (0.35 * w_sys)) ** 2)
    return sys + dia - dip


def simulate_signals(rows: pd.DataFrame, sim: SimulateConfig, data: DataConfig, seed: int) -> np.ndarray:
    """Raw PPG for the given segment rows, float32 [len(rows), signal_length]; rows from segment_table."""
    n, length, fs = len(rows), data.signal_length, data.fs
    t = np.arange(length) / fs
    # Per-row random draws, each row from its own generator so results do not depend on batching.
    draws = np.empty((n, 12))
    noise = np.empty((n, length))
    for i, r in enumerate(rows["row"].to_numpy()):
        g = np.random.default_rng([seed, 0x99, int(r)])
        draws[i] = g.random(12)
        noise[i] = g.standard_normal(length)
    col = lambda name: rows[name].to_numpy(dtype=np.float64)[:, None]  # noqa: E731
    age, hr, si, ri, sdnn = col("age"), col("hr"), col("si"), col("ri"), col("sdnn")
    height_m = col("height") / 100.0
    d = lambda k: draws[:, k:k + 1]  # noqa: E731

    # Heart rhythm: mean rate, respiratory sinus arrhythmia (weaker with age) and slow HRV so that
    # the beat-interval jitter has roughly the subject's SDNN.
    f_resp = 0.2 + 0.1 * d(0)                                        # 12-18 breaths/min
    rr = 60.0 / hr
    rel_jitter = (sdnn / 1000.0) / rr
    rsa = np.clip(0.6 * rel_jitter * (1.4 - age / 100.0), 0.0, 0.15)
    slow = rel_jitter * np.sin(2 * np.pi * (0.05 + 0.08 * d(1)) * t + 2 * np.pi * d(2))
    rate = (hr / 60.0) * (1.0 + rsa * np.sin(2 * np.pi * f_resp * t + 2 * np.pi * d(3)) + 0.5 * slow)
    phase = d(4) + np.cumsum(rate, axis=1) / fs
    period = (1.0 / rate).astype(np.float32)
    tau = ((phase % 1.0) * period).astype(np.float32)                 # seconds since beat onset

    # Beat shape: systolic upstroke lengthens with age; the diastolic peak follows at height/SI
    # (stiffness index definition) with amplitude RI; the dicrotic notch fades with age.
    f32 = lambda a: a.astype(np.float32)  # noqa: E731  (beat-shape math in float32)
    w_sys = f32(0.045 + 0.00035 * (age - 18.0))
    t_sys = f32(0.05 + 2.2 * w_sys)
    t_dia = f32(t_sys + np.clip(height_m / si, 0.10, 0.40))
    w_dia = f32(0.09 + 0.0004 * (age - 18.0))
    notch = f32(np.clip(0.12 * (1.0 - (age - 18.0) / 70.0), 0.0, None))
    ri = f32(ri)
    shape = (_pulse(tau, t_sys, w_sys, t_dia, w_dia, ri, notch)
             + _pulse(tau + period, t_sys, w_sys, t_dia, w_dia, ri, notch))   # tail of the previous beat

    # Respiratory baseline wander and amplitude modulation, sensor gain, noise.
    am = 1.0 + 0.08 * np.sin(2 * np.pi * f_resp * t + 2 * np.pi * d(5))
    baseline = 0.12 * np.sin(2 * np.pi * f_resp * t + 2 * np.pi * d(6))
    gain = 0.5 + 1.5 * d(7)
    x = gain * (am * shape + baseline + sim.noise_std * noise)

    # Occasional motion artifact; half of those also saturate the sensor (validation quarantines them).
    hit = d(8)[:, 0] < sim.artifact_rate
    if hit.any():
        start = (d(9)[:, 0] * (length - 200)).astype(int)
        for i in np.flatnonzero(hit):
            seg = slice(start[i], start[i] + 150)
            x[i, seg] += gain[i, 0] * 2.0 * np.sin(np.linspace(0, np.pi, 150)) * (1 if d(10)[i, 0] < 0.5 else -1)
            if d(11)[i, 0] < 0.5:
                x[i] = np.clip(x[i], None, np.percentile(x[i], 80))
    return x.astype(np.float32)
