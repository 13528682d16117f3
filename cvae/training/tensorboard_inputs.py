"""What rank 0's TensorBoard logger draws: a few validation signals to reconstruct, and for each image age the
validation signal closest in age, whose encoding is decoded at the requested age (as generate draws z)."""
from __future__ import annotations

import numpy as np

from cvae.model.conditions import Conditions
from cvae.training.input_pipeline import eval_dataset
from data_prep.manifest import Manifest

IMAGE_AGES = [20.0, 40.0, 60.0, 80.0]


def reconstruction_batch(data_dir, manifest: Manifest, conditions: list[str], n: int = 4) -> tuple:
    return next(iter(eval_dataset(data_dir, manifest, "val", conditions, n)))


def age_encodings(data_dir, manifest: Manifest, conditions: list[str], pool: int = 1024) -> dict | None:
    """For each of IMAGE_AGES: the validation signal (of the first `pool`) closest in age, its condition, the same
    condition with the requested age, and its true age; None when the model is not conditioned on age."""
    if "age" not in conditions:
        return None
    encoding = Conditions.from_manifest(manifest, conditions)
    col, j = encoding.column("age"), conditions.index("age")
    mean, std = encoding.mean[j], encoding.std[j]
    signals, conds = [], []
    for s, c in eval_dataset(data_dir, manifest, "val", conditions, 256):
        signals.append(s.numpy())
        conds.append(c.numpy())
        if sum(len(x) for x in signals) >= pool:
            break
    signals, conds = np.concatenate(signals)[:pool], np.concatenate(conds)[:pool]
    ages = conds[:, col] * std + mean
    pick = [int(np.argmin(np.abs(ages - a))) for a in IMAGE_AGES]
    target = conds[pick].copy()
    target[:, col] = (np.array(IMAGE_AGES) - mean) / std
    return {"signal": signals[pick], "cond": conds[pick], "target": target.astype(np.float32),
            "ages": IMAGE_AGES, "source_ages": ages[pick]}
