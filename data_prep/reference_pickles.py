"""Write a source in the reference study's pickle layout (train/validation/test trio), split by subject."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from data_prep.common import temp_beside
from data_prep.settings import PrepConfig
from data_prep.sources import write_reference_pickle
from data_prep.split import assign_splits

log = logging.getLogger(__name__)
TRIO = {"train": "train_db_1p.pickle", "val": "validation_db_1p.pickle", "test": "test_db_1p.pickle"}


def write_reference_trio(source, cfg: PrepConfig, out: Path) -> None:
    """Raw (unnormalized) signals with a labels DataFrame that keeps subject_id, one pickle per split."""
    rows = source.rows()
    split = assign_splits(rows["subject_id"], cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, filename in TRIO.items():
        part = rows[split.to_numpy() == name]
        signals = source.signals(part) if len(part) else np.zeros((0, cfg.data.signal_length), np.float32)
        tmp = temp_beside(out / filename)
        write_reference_pickle(tmp, signals, part[["subject_id"] + source.labels])
        tmp.replace(out / filename)
        log.info("wrote %s: %d signals", out / filename, len(part))
