"""Per-signal checks: every bad row gets a reason; nothing is dropped silently."""
from __future__ import annotations

import numpy as np
import pandas as pd

# Plausible physiological ranges for each label (units: years, 0/1, cm, kg, kg/m^2, bpm).
LABEL_RANGES = {
    "age": (0.0, 120.0), "sex": (0.0, 1.0), "height": (100.0, 230.0),
    "weight": (25.0, 300.0), "bmi": (10.0, 80.0), "hr": (25.0, 250.0),
}
FLAT_STD = 1e-6          # a signal whose std is below this is a flat line
CLIP_FRACTION = 0.05     # this share of samples sitting exactly at the max (or min) means saturation


def check_rows(signals: np.ndarray, labels: pd.DataFrame, label_columns: list[str],
               signal_length: int) -> np.ndarray:
    """Return one reason string per row ('' = valid); the first failing check wins."""
    n = len(signals)
    reasons = np.full(n, "", dtype=object)

    def mark(mask: np.ndarray, reason: str) -> None:
        reasons[(reasons == "") & mask] = reason

    if signals.ndim != 2 or signals.shape[1] != signal_length:
        reasons[:] = "wrong_length"
        return reasons
    finite = np.isfinite(signals).all(axis=1)
    mark(~finite, "non_finite")
    safe = np.where(np.isfinite(signals), signals, 0.0)
    mark(safe.std(axis=1) < FLAT_STD, "flat")
    at_max = (safe == safe.max(axis=1, keepdims=True)).mean(axis=1)
    at_min = (safe == safe.min(axis=1, keepdims=True)).mean(axis=1)
    mark(np.maximum(at_max, at_min) >= CLIP_FRACTION, "clipped")
    mark(label_problems(labels, label_columns) != "", "bad_label")
    return reasons


def label_problems(labels: pd.DataFrame, label_columns: list[str]) -> np.ndarray:
    """Per row, '' or what is wrong with its labels, e.g. 'age missing or not a number' or 'age=250 outside 0-120';
    a categorical column (data_prep.categories: codes) is only checked for missing values."""
    problems = np.full(len(labels), "", dtype=object)
    for col in label_columns:
        if col not in labels:
            problems[problems == ""] = f"{col} missing or not a number"
            continue
        values = pd.to_numeric(labels[col], errors="coerce").to_numpy(dtype=np.float64)
        lo, hi = LABEL_RANGES.get(col, (-np.inf, np.inf))
        bad = (problems == "") & ~np.isfinite(values)
        problems[bad] = f"{col} missing or not a number" if col in LABEL_RANGES else f"{col} missing"
        bad = (problems == "") & ((values < lo) | (values > hi))
        problems[bad] = [f"{col}={v:g} outside {lo:g}-{hi:g}" for v in values[bad]]
    return problems
