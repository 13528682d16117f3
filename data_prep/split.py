"""Subject-disjoint train/val/test assignment and the round-robin layout of subjects over shards."""
from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def assign_splits(subject_ids: pd.Series, val_fraction: float, test_fraction: float, seed: int) -> pd.Series:
    """Map each row to a split by its subject, so that no subject appears in two splits."""
    subjects = np.array(sorted(pd.unique(subject_ids)))
    order = np.random.default_rng([seed, 0x5117]).permutation(len(subjects))
    n_val = int(round(val_fraction * len(subjects)))
    n_test = int(round(test_fraction * len(subjects)))
    split_of = np.empty(len(subjects), dtype=object)
    split_of[order[:n_val]] = "val"
    split_of[order[n_val:n_val + n_test]] = "test"
    split_of[order[n_val + n_test:]] = "train"
    return subject_ids.map(dict(zip(subjects, split_of)))


def shard_of_rows(subject_ids: pd.Series, n_shards: int, seed: int) -> np.ndarray:
    """Spread subjects round-robin (in a seeded random order) over n_shards; returns a shard per row."""
    subjects = np.array(sorted(pd.unique(subject_ids)))
    order = np.random.default_rng([seed, 0x54A2]).permutation(len(subjects))
    shard = np.empty(len(subjects), dtype=np.int64)
    shard[order] = np.arange(len(subjects)) % n_shards
    return subject_ids.map(dict(zip(subjects, shard))).to_numpy()
