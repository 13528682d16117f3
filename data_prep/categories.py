"""Categorical columns (data.categories): each row's value stored as a code, the index of the value in the sorted
list of the column's values; `source` is the row's source (the label table's source column for recordings, the
file for arrays)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_prep.common import UserError

MAX_VALUES = 64      # values of one categorical column: a model condition is a one-hot vector this wide at most
MAX_LENGTH = 200     # characters of one value


def encode_categories(table: pd.DataFrame, names: list[str], where: str) -> dict[str, list[str]]:
    """Replace each categorical column of the row table by its codes (missing or empty values: NaN, judged per row
    as bad_label); returns each column's values in code order."""
    values = {}
    for name in names:
        if name == "source":
            column = table["_source"]
        elif name in table:
            column = table[name]
        else:
            raise UserError(f"{where}: data.categories names {name!r}, which is not a column of the labels; add the "
                            "column to the label table or drop it from data.categories")
        text = column.where(column.notna(), "").astype(str).str.strip()
        found = sorted(set(text) - {""})
        too_long = [v for v in found if len(v) > MAX_LENGTH]
        if too_long:
            raise UserError(f"{where}: data.categories column {name!r} has a value of {len(too_long[0])} characters; "
                            f"at most {MAX_LENGTH} are allowed")
        if not found or len(found) > MAX_VALUES:
            raise UserError(f"{where}: data.categories column {name!r} has {len(found)} distinct values; a condition "
                            f"category needs 1 to {MAX_VALUES} (a device, site or source, not an identifier)")
        table[name] = to_codes(text, found)
        values[name] = found
    return values


def to_codes(text: pd.Series, values: list[str]) -> pd.Series:
    """Each value's code (float; NaN for a value not among `values`)."""
    return text.map({v: float(k) for k, v in enumerate(values)}).astype(np.float64)


def decode(codes, values: list[str]) -> np.ndarray:
    """Codes back to their values."""
    return np.asarray(values, dtype=object)[np.asarray(codes).astype(np.int64)]
