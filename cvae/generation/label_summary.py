"""The labels a model draws for what a request leaves open, as a summary that identifies no one.

Training subjects are grouped into cells: an age band and one combination of the discrete labels (categorical
columns and numeric ones with at most DISCRETE_MAX whole values, such as sex). A cell is kept only when it holds
at least MIN_CELL subjects. Within a band, subjects left in smaller cells are grouped again by fewer discrete labels
(the model's conditions are dropped last); a label a cell no longer fixes is drawn from its overall frequency (only
values held by MIN_CELL or more subjects are stored). Age bands start AGE_BAND years wide and are merged with a
neighbour until each band keeps a cell. A kept cell stores its subject count, the discrete values it fixes and the
mean and covariance of its continuous labels (one row per subject); nothing about a single subject. Drawing picks
a cell of the requested age's band in proportion to its subjects and draws the continuous labels from its
Gaussian, clipped to the training range.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

FILE = "label_summary.json"
MIN_CELL = 10        # fewest subjects a stored cell describes
AGE_BAND = 10.0      # years: the narrowest age band
DISCRETE_MAX = 10    # a numeric label with at most this many distinct whole values is discrete
MAX_BYTES = 4 << 20  # a summary file larger than this is refused unread
MAX_CELLS = 5_000


def _discrete(table: pd.DataFrame, columns: list[str], categorical: list[str]) -> list[str]:
    def whole(c):
        v = table[c].to_numpy(np.float64)
        return len(np.unique(v)) <= DISCRETE_MAX and np.array_equal(v, np.round(v))
    return [c for c in columns if c in categorical or (c != "age" and whole(c))]


def _plain(value):
    """A label value as the summary stores it: text stays text, a number becomes a float."""
    return value if isinstance(value, str) else float(value)


def _cells(band: pd.DataFrame, discrete: list[str], levels: int, continuous: list[str]) -> list[dict]:
    """Cells of MIN_CELL or more subjects fixing discrete[:k], for k from all discrete labels down to `levels` less;
    each pass groups only the subjects no earlier pass placed."""
    out, left = [], band
    for k in range(len(discrete), len(discrete) - levels - 1, -1):
        groups = left.groupby(discrete[:k], sort=True) if k else [((), left)]
        placed = []
        for key, group in groups:
            if len(group) < MIN_CELL:
                continue
            key = key if isinstance(key, tuple) else (key,)
            values = group[continuous].to_numpy(np.float64)
            cov = np.cov(values, rowvar=False).reshape(len(continuous), len(continuous)) if continuous \
                else np.zeros((0, 0))
            fixed = [_plain(v) for v in key] + [None] * (len(discrete) - k)
            out.append({"subjects": int(len(group)), "discrete": fixed, "mean": values.mean(axis=0).tolist(),
                        "cov": cov.tolist()})
            placed.append(group.index)
        if placed:
            left = left.drop(index=np.concatenate(placed))
    return out


def summarize(table: pd.DataFrame, columns: list[str], categorical: list[str], keep: list[str] = ()) -> dict:
    """The summary of a training label table (one row per window, with subject_id): see the module docstring.
    `keep`: discrete labels to drop last when regrouping (the model's conditions). Band edges are multiples of
    AGE_BAND, so no edge is a subject's age."""
    subjects = table.drop_duplicates("subject_id").reset_index(drop=True)
    found = _discrete(subjects, columns, categorical)
    discrete = [c for c in keep if c in found] + [c for c in found if c not in keep]
    continuous = [c for c in columns if c not in found and c != "age"]
    values = {}
    for c in discrete:
        counts = subjects[c].value_counts()
        values[c] = [[_plain(v), int(n)] for v, n in counts.sort_index().items() if n >= MIN_CELL]
    # labels are left open from the last one back, and only while each has stored values to draw from
    levels = next((i for i, c in enumerate(reversed(discrete)) if not values[c]), len(discrete))
    age = subjects["age"].to_numpy(np.float64)
    edges = np.arange(np.floor(age.min() / AGE_BAND), np.floor(age.max() / AGE_BAND) + 2) * AGE_BAND

    def cells(a, b):
        return _cells(subjects[(age >= a) & (age < b)], discrete, levels, continuous)

    bands, start = [], edges[0]
    for stop in edges[1:]:
        kept = cells(start, stop)
        if kept:
            bands.append({"age": [float(start), float(stop)], "cells": kept})
            start = stop
    if bands and start < edges[-1]:   # a last stretch without a cell of its own joins the band before it
        bands[-1]["age"][1] = float(edges[-1])
        bands[-1]["cells"] = cells(*bands[-1]["age"])
    return {"min_cell": MIN_CELL, "discrete": discrete, "continuous": continuous, "values": values, "bands": bands,
            "suppressed_subjects": int(len(subjects) - sum(c["subjects"] for b in bands for c in b["cells"]))}


def from_dataset(data_dir: Path, manifest, conditions: list[str] = ()) -> dict:
    """The summary of a prepared data set's training labels (its label table), keeping the model's `conditions`
    fixed in cells longest."""
    table = pd.read_csv(Path(data_dir) / manifest.label_table, dtype={c: str for c in manifest.categories})
    return summarize(table, list(manifest.labels) + list(manifest.categories), list(manifest.categories),
                     list(conditions))


def draw(summary: dict, ages: np.ndarray, n: int, ranges: dict, rng: np.random.Generator) -> pd.DataFrame:
    """n label rows per age: a cell of the age's band (the nearest band outside them) in proportion to its subjects,
    its discrete values, and continuous values from its Gaussian clipped to `ranges` ({column: (min, max)})."""
    bands = summary["bands"]
    centres = np.array([(b["age"][0] + b["age"][1]) / 2 for b in bands])
    out = []
    for age in ages:
        inside = [b for b in bands if b["age"][0] <= age < b["age"][1]]
        band = inside[0] if inside else bands[int(np.argmin(np.abs(centres - age)))]
        weights = np.array([c["subjects"] for c in band["cells"]], np.float64)
        picks = rng.choice(len(weights), n, p=weights / weights.sum())
        rows = pd.DataFrame({"age": np.full(n, float(age))})
        for j, column in enumerate(summary["discrete"]):
            fixed = np.array([band["cells"][k]["discrete"][j] for k in picks], object)
            open_ = np.array([v is None for v in fixed])
            if open_.any():
                known, counts = zip(*summary["values"][column])
                fixed[open_] = [known[i] for i in rng.choice(len(known), int(open_.sum()),
                                                             p=np.array(counts) / sum(counts))]
            rows[column] = fixed.tolist()
        values = np.zeros((n, len(summary["continuous"])))
        for k in np.unique(picks) if summary["continuous"] else ():
            cell = band["cells"][k]
            values[picks == k] = rng.multivariate_normal(cell["mean"], cell["cov"], int((picks == k).sum()),
                                                         method="eigh")
        for j, column in enumerate(summary["continuous"]):
            rows[column] = np.clip(values[:, j], *ranges[column])
        out.append(rows)
    return pd.concat(out, ignore_index=True)


def save(summary: dict, model_dir: Path) -> None:
    from data_prep.manifest import write_json_atomic

    write_json_atomic(Path(model_dir) / FILE, summary)


def _problem(s, columns: list[str], categories: dict[str, list[str]]) -> str | None:
    """What is wrong with a loaded summary for a model of these label columns and categorical values, or None."""
    if not isinstance(s, dict) or not isinstance(s.get("bands"), list) or not s["bands"]:
        return "no age bands"
    discrete, continuous = s.get("discrete"), s.get("continuous")
    if not isinstance(discrete, list) or not isinstance(continuous, list) \
            or sorted(discrete + continuous + ["age"]) != sorted(columns):
        return f"its columns are not the model's labels {columns}"
    stored = s.get("values")
    try:
        ok = isinstance(stored, dict) and sorted(stored) == sorted(discrete) and all(
            isinstance(n, int) and n >= MIN_CELL and (v in categories[d] if d in categories
                                                      else isinstance(v, (int, float)))
            for d in discrete for v, n in stored[d])
    except (TypeError, ValueError):
        ok = False
    if not ok:
        return f"its label values are not known values of {MIN_CELL} or more subjects"
    if sum(len(b.get("cells", [])) if isinstance(b, dict) else 0 for b in s["bands"]) > MAX_CELLS:
        return f"more than {MAX_CELLS} cells"
    k = len(continuous)
    for b in s["bands"]:
        if not isinstance(b, dict) or not isinstance(b.get("age"), list) or len(b["age"]) != 2 \
                or not all(isinstance(a, (int, float)) and np.isfinite(a) for a in b["age"]) \
                or not b["age"][0] < b["age"][1] or not isinstance(b.get("cells"), list) or not b["cells"]:
            return "an age band without a range or cells"
        for c in b["cells"]:
            try:
                ok = (isinstance(c, dict) and isinstance(c["subjects"], int) and c["subjects"] >= MIN_CELL
                      and len(c["discrete"]) == len(discrete)
                      and all(stored[d] if v is None else v in categories[d] if d in categories
                              else isinstance(v, (int, float)) for d, v in zip(discrete, c["discrete"]))
                      and np.isfinite(np.array(c["mean"], np.float64)).all() and len(c["mean"]) == k
                      and np.isfinite(np.array(c["cov"], np.float64).reshape(k, k)).all())
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                return f"a cell that is not a count of {MIN_CELL} or more subjects, known values and a Gaussian"
    return None


def load(model_dir: Path, columns: list[str], categories: dict[str, list[str]]) -> dict:
    """The model directory's label summary, refused (UserError) unless it is small, well formed and about the
    model's labels."""
    from data_prep.common import UserError

    path = Path(model_dir) / FILE
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES >> 20} MiB")
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is missing or unreadable ({exc}); pass a finished training run as --model") from None
    problem = _problem(summary, columns, categories)
    if problem:
        raise UserError(f"{path}: {problem}; the model directory is damaged: re-export the run")
    return summary
