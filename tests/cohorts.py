"""Simulated cohorts the tests build their signals from (imported by tests in both tests/unit and tests/e2e)."""
from __future__ import annotations

import numpy as np

from conftest import SMOKE
from cvae.config import load_config
from data_prep.normalize import normalize
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects

LABELS = ["age", "sex", "height", "weight", "bmi", "hr"]


def small_cohort(n_subjects=30, per=2, seed=3):
    """A simulated cohort on the smoke config: (config, signals, rows)."""
    cfg = load_config(SMOKE, [f"simulate.n_subjects={n_subjects}", f"simulate.segments_per_subject={per}",
                              "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, seed), per)
    return cfg, simulate_signals(rows, cfg.simulate, cfg.data, seed), rows


def evaluation_cohort():
    """900 simulated subjects, one normalized window each: (signals, ages, config, heart rates)."""
    cfg = load_config(None, ["simulate.n_subjects=900", "simulate.segments_per_subject=1",
                             "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, 11), 1)
    x = normalize(simulate_signals(rows, cfg.simulate, cfg.data, 11), "maxabs")
    return x, rows["age"].to_numpy(), cfg, rows["hr"].to_numpy()


def two_devices(folder, n_subjects=80, per=4, seed=5):
    """Two .npz sources of one simulated cohort split by age (a.npz under 55, b.npz from 55: disjoint ranges, as real
    collections' devices often are); device b records the pulse time-reversed. A `site` column with one missing
    value. Returns the two paths and the rows."""
    cfg = load_config(SMOKE, [f"simulate.n_subjects={n_subjects}", f"simulate.segments_per_subject={per}",
                              "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, seed), per)
    signals = simulate_signals(rows, cfg.simulate, cfg.data, seed)
    rows["site"] = np.where(rows["subject_id"].str[-1].isin(list("01234")), "ward", "clinic")
    rows.loc[3, "site"] = ""
    paths = []
    for name, part in (("a.npz", rows["age"] < 55), ("b.npz", rows["age"] >= 55)):
        x = signals[part.to_numpy()]
        np.savez(folder / name, signals=x[:, ::-1] if name == "b.npz" else x,
                 **{c: rows.loc[part, c].to_numpy() for c in LABELS},
                 **{c: rows.loc[part, c].to_numpy(dtype=str) for c in ("subject_id", "site")})
        paths.append(folder / name)
    return paths, rows
