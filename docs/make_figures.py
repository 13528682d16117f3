"""Regenerate the figures in docs/: `python docs/make_figures.py` (simulated beats by age decade)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cvae.beats import decade_of  # noqa: E402
from cvae.config import load_config  # noqa: E402
from cvae.generation.generate import DecadeBeats  # noqa: E402
from data_prep.normalize import normalize  # noqa: E402
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"


def simulated_by_decade() -> None:
    """Mean +/- sd peak-aligned beat per decade of 1,600 simulated subjects (the same figure generate draws)."""
    cfg = load_config(None, ["simulate.n_subjects=1600", "simulate.segments_per_subject=1",
                             "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, 1), 1)
    signals = normalize(simulate_signals(rows, cfg.simulate, cfg.data, 1), "maxabs")
    decade = decade_of(rows["age"].to_numpy())
    figure = DecadeBeats(sorted(set(decade)), cfg.data.fs, what="simulated subjects")
    figure.add(signals, decade)
    (OUT / "simulated_by_decade.png").write_bytes(figure.png())


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    simulated_by_decade()
