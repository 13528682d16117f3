"""Signal sources: each exposes a row table (labels + subject_id) and produces signals for any row subset."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_prep import simulate
from launch.config import DataConfig, SimulateConfig


@dataclass
class SimulatorSource:
    """The built-in physiological cohort simulator (streams: signals are made per shard on demand)."""
    sim: SimulateConfig
    data: DataConfig

    def describe(self) -> dict:
        return {"kind": "simulator", "simulate": vars(self.sim)}

    def rows(self) -> pd.DataFrame:
        subjects = simulate.simulate_subjects(self.sim, self.data.seed)
        return simulate.segment_table(subjects, self.sim.segments_per_subject)

    def signals(self, rows: pd.DataFrame) -> np.ndarray:
        return simulate.simulate_signals(rows, self.sim, self.data, self.data.seed)
