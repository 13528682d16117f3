"""PulseDB subset files (`Train_Subset.mat`, `CalFree_Test_Subset.mat`, ...): MATLAB v7.3 (HDF5), read in chunks.

Layout, as PulseDB's `Generate_Subsets.m` saves it: one struct `Subset` with `Signals` (segments x 3 x 1250 in
MATLAB: ECG_F, PPG_F, ABP_Raw; 10 s at 125 Hz; HDF5 stores the dimensions reversed), per-segment `Age`, `Gender`
(cell of 'M'/'F'), `Subject` (cell of names), `SBP`, `DBP`, `Height`, `Weight`, `BMI` (NaN for MIMIC subjects).
Cells are HDF5 object references to MATLAB char arrays (uint16).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.common import UserError

PPG_CHANNEL = 1   # ECG_F, PPG_F, ABP_Raw
NUMBERS = {"Age": "age", "Height": "height", "Weight": "weight", "BMI": "bmi", "SBP": "sbp", "DBP": "dbp"}
CELLS = {"Gender": "sex", "Subject": "subject_id"}


def _stored_here(ds, path: Path):
    """The dataset, when its data lives in this file: virtual datasets and external storage are refused."""
    if ds.is_virtual:
        raise UserError(f"{path}: {ds.name} is a virtual dataset (its data lives in other files); refused: save the "
                        "subset with its data in one file")
    if ds.external:
        raise UserError(f"{path}: {ds.name} keeps its data in external file {ds.external[0][0]!r}; refused: save the "
                        "subset with its data in one file")
    return ds


def _member(group, name: str, path: Path):
    """group[name] when it is a plain (hard) link in this file, None when absent; external and soft links are
    refused without being followed (they would open or read other files)."""
    import h5py
    link = group.get(name, getlink=True)
    if link is None:
        return None
    where = f"{group.name.rstrip('/')}/{name}"
    if not isinstance(link, h5py.HardLink):
        kind, target = ("an external link", f"{link.filename}:{link.path}") if isinstance(link, h5py.ExternalLink) \
            else ("a soft link", link.path)
        raise UserError(f"{path}: {where} is {kind} to {target}; refused: a PulseDB subset file holds its data itself")
    obj = group[name]
    return _stored_here(obj, path) if isinstance(obj, h5py.Dataset) else obj


def _text(f, ref, path: Path) -> str:
    """A MATLAB char array behind an object reference."""
    return "".join(map(chr, np.asarray(_stored_here(f[ref], path)).ravel()))


def read_pulsedb(path: Path, chunk: int) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """(PPG [n, 1250] float32, labels) chunk by chunk: age, sex, subject_id, and height/weight/bmi when given."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a MATLAB v7.3 (HDF5) file ({exc}); save it with -v7.3") from None
    with f:
        subset = _member(f, "Subset", path)
        members = {k: _member(subset, k, path) for k in ("Signals", *NUMBERS, *CELLS)} \
            if isinstance(subset, h5py.Group) else {}
        members = {k: v for k, v in members.items() if v is not None}
        if "Signals" not in members or "Age" not in members:
            raise UserError(f"{path}: no struct 'Subset' with 'Signals' and 'Age' (has {', '.join(f.keys())}); "
                            "is this a PulseDB subset file?")
        signals = members["Signals"]
        n = int(np.asarray(members["Age"]).size)
        if signals.ndim != 3 or 3 not in signals.shape[1:2] or n not in (signals.shape[0], signals.shape[2]):
            raise UserError(f"{path}: Subset.Signals has shape {signals.shape}, expected segments x 3 x samples")
        segments_last = signals.shape[2] == n and signals.shape[0] != n
        numbers = {name: np.asarray(members[k]).ravel() for k, name in NUMBERS.items() if k in members}
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            block = signals[:, :, start:stop].transpose(2, 1, 0) if segments_last else signals[start:stop]
            labels = pd.DataFrame({name: v[start:stop] for name, v in numbers.items()})
            for key, name in CELLS.items():
                if key in members:
                    refs = np.asarray(members[key]).ravel()[start:stop]
                    labels[name] = [_text(f, r, path) for r in refs]
            yield np.asarray(block[:, PPG_CHANNEL, :], dtype=np.float32), labels
