"""Regenerate the figures in docs/: `python docs/make_figures.py` (simulated beats by age decade)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cvae.callbacks import waveform_figure  # noqa: E402
from cvae.evaluate.features import beat_templates  # noqa: E402
from data_prep.normalize import normalize  # noqa: E402
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects  # noqa: E402
from launch.config import load_config  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"


def simulated_by_decade() -> None:
    cfg = load_config(None, ["simulate.n_subjects=1600", "simulate.segments_per_subject=1",
                             "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, 1), 1)
    beats = beat_templates(normalize(simulate_signals(rows, cfg.simulate, cfg.data, 1), "maxabs"), cfg.data.fs)
    decade = (rows["age"].to_numpy() // 10 * 10).astype(int)
    shown = sorted(set(decade))
    ok = ~np.isnan(beats[:, 0])
    mean = np.stack([beats[(decade == d) & ok].mean(axis=0) for d in shown])
    sd = np.stack([beats[(decade == d) & ok].std(axis=0) for d in shown])
    titles = [f"simulated ages {d}-{d + 9}: mean +/- sd peak-aligned beat ({((decade == d) & ok).sum()} subjects)"
              for d in shown]
    (OUT / "simulated_by_decade.png").write_bytes(waveform_figure(mean, titles, cfg.data.fs, spread=sd))


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    simulated_by_decade()
