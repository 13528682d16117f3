"""Signal sources: each exposes a row table (labels + subject_id) and produces signals for any row subset.

File readers (reference-study pickles, .npz, .npy + CSV/Parquet labels, raw CSV/WFDB recordings)
load into one float32 [N, L] array that is parked in a .npy beside the output and memory-mapped,
so shard workers in other processes read rows without copying the whole array.
"""
from __future__ import annotations

import hashlib
import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import resample, resample_poly

from data_prep import simulate
from data_prep.safe_pickle import load_reference_pickle
from data_prep.validate import LABEL_RANGES
from launch.config import DataConfig, SimulateConfig
from launch.errors import UserError

log = logging.getLogger(__name__)
REFERENCE_TRIO = {"train_db_1p.pickle": "train", "validation_db_1p.pickle": "val", "test_db_1p.pickle": "test"}
TIME_COLUMNS = {"time", "timestamp", "t", "time_s", "time_ms", "timestamp_ms", "seconds", "ms"}
SEX_CODES = {"m": 0.0, "male": 0.0, "f": 1.0, "female": 1.0, "0": 0.0, "1": 1.0}


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


@dataclass
class ArraySource:
    """Signals from files, parked in `npy` (memory-mapped on use) with a row table."""
    npy: Path
    table: pd.DataFrame
    info: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return self.info

    def rows(self) -> pd.DataFrame:
        return self.table.copy()

    def signals(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(np.load(self.npy, mmap_mode="r")[rows["row"].to_numpy()])


def read_reference_pickle(path: Path, workdir: Path) -> tuple[list, pd.DataFrame]:
    """The reference study's {"labels": DataFrame, "samples": list of 1-D arrays}, loaded by the sandboxed
    allowlist unpickler (data_prep.safe_pickle)."""
    try:
        return load_reference_pickle(path, workdir)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None


# ---------------------------------------------------------------- other readers
def read_npz(path: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """`.npz` with `signals` [N, L] and one 1-D array per label (plus optional subject_id)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "signals" not in npz:
                raise UserError(f"{path}: no 'signals' array (found {', '.join(npz.files)})")
            signals = npz["signals"]
            labels = pd.DataFrame({k: npz[k] for k in npz.files if k != "signals" and npz[k].ndim == 1})
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: unreadable .npz ({exc}); arrays must be plain numbers (no objects)") from None
    if signals.ndim != 2 or (len(labels.columns) and len(labels) != len(signals)):
        raise UserError(f"{path}: 'signals' must be [N, L] with one label value per row")
    return signals, labels


def read_label_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table; an unreadable one is a one-line error naming the file."""
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow; pip install pyarrow or use CSV") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: unreadable table ({type(exc).__name__}: {str(exc)[:200]})") from None


def read_npy_with_table(path: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """`x.npy` signals [N, L] with labels in `x.csv` or `x.parquet` beside it."""
    table = next((p for p in (path.with_suffix(".csv"), path.with_suffix(".parquet")) if p.exists()), None)
    if table is None:
        raise UserError(f"{path}: no label table beside it; add {path.with_suffix('.csv').name} or .parquet")
    try:
        signals = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: unreadable .npy ({exc}); arrays must be plain numbers (no objects)") from None
    labels = read_label_table(table)
    if signals.ndim != 2 or len(labels) != len(signals):
        raise UserError(f"{path}: signals {signals.shape} and {len(labels)} label rows in {table.name} do not match")
    return signals, labels


def resample_to(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling of a 1-D recording between sampling rates."""
    if abs(fs_in - fs_out) < 1e-9:
        return x
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def windows(x: np.ndarray, length: int, overlap: float) -> np.ndarray:
    """Fixed windows of `length` with the given fractional overlap; a short tail is dropped."""
    step = max(1, int(round(length * (1 - overlap))))
    starts = range(0, len(x) - length + 1, step)
    return np.stack([x[s:s + length] for s in starts]) if len(x) >= length else np.zeros((0, length))


def read_recording(path: Path, data: DataConfig, fs: float | None) -> tuple[np.ndarray, float]:
    """One raw recording (CSV column or WFDB record) -> (1-D signal, its sampling rate)."""
    if path.suffix in (".hea", ".dat"):
        import wfdb
        try:
            record = wfdb.rdrecord(str(path.with_suffix("")))
        except Exception as exc:   # wfdb raises many types for damaged headers and signal files
            raise UserError(f"{path}: unreadable WFDB record ({type(exc).__name__}: {str(exc)[:200]})") from None
        names = [n.upper() for n in record.sig_name]
        if data.raw_channel:
            if data.raw_channel.upper() not in names:
                raise UserError(f"{path}: no channel {data.raw_channel!r} (has {', '.join(record.sig_name)}); "
                                "fix data.raw_channel")
            ch = names.index(data.raw_channel.upper())
        else:
            ch = next((i for i, n in enumerate(names) if "PLETH" in n or "PPG" in n), 0)
        return record.p_signal[:, ch].astype(np.float64), float(record.fs)
    table = read_label_table(path)
    time_cols = [c for c in table.columns if str(c).strip().lower() in TIME_COLUMNS]
    if data.raw_column in time_cols:
        raise UserError(f"{path}: data.raw_column={data.raw_column!r} is a time axis, not a signal; name the PPG column")
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and c not in time_cols]
    if not data.raw_column and len(numeric) != 1:
        raise UserError(f"{path}: {'no numeric column' if not numeric else 'several numeric columns'} "
                        f"({', '.join(map(str, numeric)) or 'has ' + ', '.join(map(str, table.columns))}); "
                        "set data.raw_column to the PPG column")
    column = data.raw_column or numeric[0]
    if column not in table:
        raise UserError(f"{path}: no column {column!r} (has {', '.join(map(str, table.columns))}); set data.raw_column")
    if fs is None and time_cols:
        fs = _rate_from_time(table[time_cols[0]], path)
    if fs is None:
        raise UserError(f"{path}: no sampling rate; pass --fs HZ or add a time column (time, timestamp or t)")
    return table[column].to_numpy(np.float64), float(fs)


def _rate_from_time(t: pd.Series, path: Path) -> float:
    """Sampling rate from a time column in seconds, or milliseconds (named *ms, or steps of more than 1)."""
    step = float(np.median(np.diff(pd.to_numeric(t, errors="coerce").to_numpy(np.float64))))
    if not np.isfinite(step) or step <= 0:
        raise UserError(f"{path}: time column {t.name!r} does not increase; pass --fs HZ")
    if str(t.name).lower().endswith("ms") or step > 1:
        step /= 1000.0
    return 1.0 / step


def read_recordings(paths: list[Path], data: DataConfig, fs: float | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Recordings resampled to data.fs and cut into windows; labels per record from labels.csv beside them."""
    tables = {p.parent / "labels.csv" for p in paths}
    missing = [t for t in tables if not t.exists()]
    if missing:
        raise UserError(f"{missing[0]} not found: raw recordings need a labels.csv beside them with a 'record' "
                        "column (file name without extension) and the label columns")
    labels = pd.concat([read_label_table(t) for t in tables], ignore_index=True)
    if "record" not in labels:
        raise UserError(f"{sorted(tables)[0]}: needs a 'record' column naming each recording")
    labels["record"] = labels["record"].astype(str)
    labels = labels.set_index("record")
    out_signals, out_rows = [], []
    for path in paths:
        if path.stem not in labels.index:
            raise UserError(f"{path}: record {path.stem!r} has no row in labels.csv")
        x, rate = read_recording(path, data, fs)
        w = windows(resample_to(x, rate, data.fs), data.signal_length, data.window_overlap)
        out_signals.append(w)
        row = labels.loc[path.stem].to_dict()
        row.setdefault("subject_id", path.stem)
        out_rows += [dict(row, segment_id=f"{path.stem}:{i}") for i in range(len(w))]
    return np.concatenate(out_signals).astype(np.float32), pd.DataFrame(out_rows)


# ---------------------------------------------------------------- normalization to the common form
def fix_length(samples, length: int, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """List/array of 1-D signals -> float32 [N, length] and a reason per row ('' or 'wrong_length')."""
    out = np.zeros((len(samples), length), np.float32)
    reasons = np.full(len(samples), "", dtype=object)
    for i, s in enumerate(samples):
        s = np.asarray(s, dtype=np.float64).ravel()
        if len(s) == length:
            out[i] = s
        elif policy == "crop" and len(s) > length:
            out[i] = s[:length]
        elif policy == "resample" and len(s) > 1:
            out[i] = resample(s, length)
        else:
            reasons[i] = "wrong_length"
    return out, reasons


def map_labels(labels: pd.DataFrame, data: DataConfig, where: str) -> pd.DataFrame:
    """Rename columns by data.label_map, encode sex, apply data.label_scale, and check units by medians."""
    labels = labels.rename(columns=data.label_map)
    missing = [c for c in data.labels if c not in labels]
    if missing:
        raise UserError(f"{where}: label column(s) {missing} missing (has {', '.join(map(str, labels.columns))}); "
                        "map them with data.label_map (e.g. data.label_map={Age: age}) or drop them from data.labels")
    if "sex" in labels and not pd.api.types.is_numeric_dtype(labels["sex"]):
        labels["sex"] = labels["sex"].astype(str).str.strip().str.lower().map(SEX_CODES)
    for col in data.labels:
        labels[col] = pd.to_numeric(labels[col], errors="coerce") * data.label_scale.get(col, 1.0)
        median = labels[col].median()
        lo, hi = LABEL_RANGES[col]
        if np.isfinite(median) and not lo <= median <= hi:
            raise UserError(f"{where}: label '{col}' has median {median:g}, outside the plausible {lo:g}-{hi:g}; "
                            f"wrong unit? scale it with data.label_scale.{col}=FACTOR")
    return labels


def duplicate_reasons(signals: np.ndarray, labels: pd.DataFrame) -> np.ndarray:
    """'duplicate' for every repeat of a segment_id (when given) or of identical signal bytes."""
    keys = labels["segment_id"].astype(str) if "segment_id" in labels else pd.Series(
        [hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest() for row in signals])
    return np.where(keys.duplicated().to_numpy(), "duplicate", "")


def _expand(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix in (".pickle", ".pkl", ".npz", ".npy", ".hea")
                           or (q.suffix == ".csv" and q.name != "labels.csv" and not q.with_suffix(".npy").exists()))
            if not found:
                raise UserError(f"--source {p}: no .pickle/.npz/.npy/.csv/.hea files inside")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise UserError(f"--source {p}: no such file or directory")
    return out


def open_files(paths: list[str], data: DataConfig, fs: float | None, workdir: Path) -> ArraySource:
    """Read every --source path into one ArraySource (with any given train/val/test split kept)."""
    files = _expand(paths)
    kinds = {f.suffix for f in files}
    parts, given_split = [], False
    recordings = [f for f in files if f.suffix in (".hea", ".csv")]
    for f in files:
        if f.suffix in (".pickle", ".pkl"):
            samples, labels = read_reference_pickle(f, workdir)
            if f.name in REFERENCE_TRIO:
                labels["given_split"] = REFERENCE_TRIO[f.name]
                given_split = True
        elif f.suffix == ".npz":
            samples, labels = read_npz(f)
        elif f.suffix == ".npy":
            samples, labels = read_npy_with_table(f)
        else:
            continue
        parts.append((f, samples, labels))
    if recordings:
        signals, labels = read_recordings(recordings, data, fs)
        parts.append((recordings[0].parent, signals, labels))
    if given_split and any("given_split" not in lab for _, _, lab in parts):
        raise UserError("--source mixes the reference train/validation/test pickles with other files; "
                        "pass the trio alone or rename the pickles to have them split here")
    fixed, tables = [], []
    for f, samples, labels in parts:
        signals, reasons = fix_length(samples, data.signal_length, data.length_policy)
        labels = map_labels(labels, data, str(f))
        if "subject_id" not in labels:
            labels["subject_id"] = [f"{f.stem}:{i}" for i in range(len(labels))]
            log.warning("%s: no subject_id column; each row is treated as its own subject", f)
        labels["subject_id"] = labels["subject_id"].astype(str)
        labels["_reason"] = reasons
        fixed.append(signals)
        tables.append(labels)
    signals = np.concatenate(fixed)
    table = pd.concat(tables, ignore_index=True)
    dup = duplicate_reasons(signals, table)
    table["_reason"] = np.where(table["_reason"] == "", dup, table["_reason"])
    table.insert(0, "row", np.arange(len(table), dtype=np.int64))
    workdir.mkdir(parents=True, exist_ok=True)
    npy = workdir / ".source-signals.npy"
    np.save(npy, signals)
    digest = hashlib.sha256(signals.tobytes())
    digest.update(pd.util.hash_pandas_object(table.drop(columns=["_reason"]), index=False).values.tobytes())
    info = {"kind": "files", "paths": [str(f) for f in files], "formats": sorted(kinds),
            "given_split": given_split, "content_sha256": digest.hexdigest()}
    return ArraySource(npy, table, info)


def open_source(paths: list[str], sim: SimulateConfig, data: DataConfig, fs: float | None, workdir: Path):
    """The simulator when no paths are given, else the file readers."""
    return open_files(paths, data, fs, workdir) if paths else SimulatorSource(sim, data)


def write_reference_pickle(path: Path, signals: np.ndarray, labels: pd.DataFrame) -> None:
    """Write the reference study's pickle layout (used to exercise that reader end to end)."""
    with open(path, "wb") as fh:
        pickle.dump({"labels": labels.reset_index(drop=True), "samples": list(signals)}, fh, protocol=4)
