"""Like-with-like judging of the requested set: real test windows drawn at the requested set's labels (age bins
centred on the requested ages, and the source when the synthetic signals carry one), the same count on each side."""
from __future__ import annotations

import numpy as np

MAX_HALF_WIDTH = 5.0   # years a bin reaches either side of its requested age, at most


def age_bins(requested: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower edges, upper edges) of one bin per distinct requested age: each edge halfway to the neighbouring
    requested age, and at most MAX_HALF_WIDTH years from its own."""
    centres = np.unique(np.asarray(requested, dtype=float))
    gaps = np.diff(centres) / 2
    below = np.minimum(np.r_[MAX_HALF_WIDTH, gaps], MAX_HALF_WIDTH)
    above = np.minimum(np.r_[gaps, MAX_HALF_WIDTH], MAX_HALF_WIDTH)
    return centres - below, centres + above


def _cells(ages: np.ndarray, sources, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The (bin, source) cell of every signal as one string ('' for a signal outside every bin)."""
    ages = np.asarray(ages, dtype=float)
    inside = (ages[:, None] >= lower) & (ages[:, None] < upper)
    inside[:, -1] |= ages == upper[-1]
    index = np.where(inside.any(1), inside.argmax(1), -1)
    src = np.full(len(ages), "", dtype=object) if sources is None else np.asarray(sources, dtype=object)
    return np.array([f"{i}|{s}" if i >= 0 else "" for i, s in zip(index, src)], dtype=object)


def matched_reference(syn_age: np.ndarray, syn_src, test_age: np.ndarray, test_src,
                      rng: np.random.Generator) -> dict:
    """Rows of the requested set and of the real test split that share their label distribution: per cell (an age
    bin of `age_bins`, and the source when `syn_src` is not None) min(synthetic, real) rows of each, drawn at
    random. Returns {"synthetic": rows, "real": rows, "ages_covered": [ages], "ages_not_covered": [ages],
    "signals_not_covered": n}; requested ages whose cells hold no real test window are not judged (n/a, not pass or
    fail)."""
    lower, upper = age_bins(syn_age)
    syn_cells = _cells(syn_age, syn_src, lower, upper)
    real_cells = _cells(test_age, None if syn_src is None else test_src, lower, upper)
    syn_rows, real_rows, uncovered = [], [], np.zeros(len(syn_age), dtype=bool)
    for cell in sorted(set(syn_cells)):
        mine, theirs = np.flatnonzero(syn_cells == cell), np.flatnonzero(real_cells == cell)
        if not len(theirs):
            uncovered[mine] = True
            continue
        n = min(len(mine), len(theirs))
        syn_rows.append(rng.choice(mine, n, replace=False))
        real_rows.append(rng.choice(theirs, n, replace=False))
    ages_out = sorted({float(a) for a in np.asarray(syn_age)[uncovered]})
    covered = sorted({float(a) for a in np.asarray(syn_age)[~uncovered]})
    return {"synthetic": np.sort(np.concatenate(syn_rows)) if syn_rows else np.zeros(0, int),
            "real": np.sort(np.concatenate(real_rows)) if real_rows else np.zeros(0, int),
            "ages_covered": covered, "ages_not_covered": ages_out, "signals_not_covered": int(uncovered.sum())}
