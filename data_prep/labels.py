"""Label columns: which ones a dataset keeps, renaming, unit fixes and sex codes."""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_prep.common import UserError
from data_prep.settings import LABELS, DataConfig
from data_prep.validate import LABEL_RANGES

SEX_CODES = {"m": 0.0, "male": 0.0, "f": 1.0, "female": 1.0, "0": 0.0, "1": 1.0}


def resolve_labels(data: DataConfig, parts: list[pd.DataFrame], where: str) -> list[str]:
    """The label columns a dataset keeps: data.labels when given (each must be a column of every part), else age
    and every other known label that every part has for every row; age is always required."""
    common = set.intersection(*[set(p.columns) & set(LABELS) for p in parts]) if parts else set()
    if data.labels:
        missing = [c for c in data.labels if c not in common]
        if missing:
            raise UserError(f"{where}: label column(s) {missing} asked for in data.labels are missing (the source has "
                            f"{', '.join(sorted(common)) or 'none'}); map them with data.label_map (e.g. "
                            "data.label_map={Age: age}) or drop them from data.labels")
        return list(data.labels)
    if "age" not in common:
        raise UserError(f"{where}: no 'age' label (the source has {', '.join(sorted(common)) or 'none'}); add an age "
                        "column or map one with data.label_map (e.g. data.label_map={Age: age})")
    return [c for c in LABELS if c in common and (c == "age" or all(p[c].notna().all() for p in parts))]


def map_labels(labels: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """Rename columns by data.label_map, encode sex, apply data.label_scale; values that are not numbers become
    missing (judged per row by validate.check_rows)."""
    labels = labels.rename(columns=data.label_map)
    if "sex" in labels and not pd.api.types.is_numeric_dtype(labels["sex"]):
        labels["sex"] = labels["sex"].astype(str).str.strip().str.lower().map(SEX_CODES)
    for col in [c for c in LABELS if c in labels]:
        labels[col] = pd.to_numeric(labels[col], errors="coerce") * data.label_scale.get(col, 1.0)
    return labels


def check_units(table: pd.DataFrame, columns: list[str], where: str) -> None:
    """Refuse a label column that is implausible for most of one source's rows: a unit problem, not a typo (single
    implausible values are quarantined per row as bad_label)."""
    for col in columns:
        lo, hi = LABEL_RANGES[col]
        for source, values in table.groupby("_source")[col]:
            values = values[np.isfinite(values)]
            outside = (values < lo) | (values > hi)
            if len(values) and outside.mean() > 0.5:
                raise UserError(f"{where}: label '{col}' of {source} is outside the plausible {lo:g}-{hi:g} for "
                                f"{outside.mean():.0%} of rows (median {values.median():g}); wrong unit? scale it with "
                                f"data.label_scale.{col}=FACTOR")
