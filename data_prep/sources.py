"""Signal sources: each exposes a row table (labels + subject_id) and produces signals for any row subset.

The simulator makes signals on demand. File sources stream every reader's output (`Part`s) into one float32
[N, L] file beside the output, memory-mapped on use, so shard workers in other processes read rows without a
copy and no reader ever holds a whole large data set.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import resample

from data_prep import simulate
from data_prep.categories import encode_categories
from data_prep.common import UserError
from data_prep.conditioning import condition
from data_prep.conditioning import describe as describe_conditioning
from data_prep.labels import check_units, map_labels, resolve_labels
from data_prep.quality import raw_reason
from data_prep.readers.arrays import npy_file_header, read_npy_with_table, read_npz
from data_prep.readers.mimic import mimic_subject, segment_records
from data_prep.readers.recordings import (label_table, min_rate, read_csv_recording, read_wfdb_recording, record_name,
                                          record_rate, record_windows)
from data_prep.readers.safe_pickle import load_reference_pickle
from data_prep.settings import LABELS, DataConfig, PrepConfig, SimulateConfig

log = logging.getLogger(__name__)
REFERENCE_TRIO = {"train_db_1p.pickle": "train", "validation_db_1p.pickle": "val", "test_db_1p.pickle": "test"}
ARRAY_SUFFIXES = (".pickle", ".pkl", ".npz", ".npy", ".mat")
RECORDING_SUFFIXES = (".csv", ".hea", ".vital")
CHUNK = 8192   # rows read, checked and written at a time
SIGNALS = ".source-signals.f32"


@dataclass
class SimulatorSource:
    """The built-in physiological cohort simulator (streams: signals are made per shard on demand)."""
    sim: SimulateConfig
    data: DataConfig
    categories: dict = field(default_factory=dict)   # one source, no categorical columns

    @property
    def labels(self) -> list[str]:
        return list(self.data.labels or LABELS)

    def describe(self) -> dict:
        return {"kind": "simulator", "simulate": vars(self.sim)}

    def rows(self) -> pd.DataFrame:
        subjects = simulate.simulate_subjects(self.sim, self.data.seed)
        rows = simulate.segment_table(subjects, self.sim.segments_per_subject)
        rows["_source"] = "simulator"
        return rows

    def signals(self, rows: pd.DataFrame) -> np.ndarray:
        return simulate.simulate_signals(rows, self.sim, self.data, self.data.seed)

    def reader(self) -> "SimulatorSource":
        """What a shard worker needs to make signals (the simulator itself)."""
        return self


@dataclass
class ArraySource:
    """Signals from files, in a raw float32 [N, L] file (memory-mapped on use) with a row table."""
    path: Path
    length: int
    table: pd.DataFrame
    labels: list[str]                # numeric labels, then the categorical columns (their codes)
    info: dict = field(default_factory=dict)
    offset: int = 0                  # bytes before the first signal (an .npy read in place: its header)
    categories: dict = field(default_factory=dict)   # categorical column -> its values in code order

    def describe(self) -> dict:
        return self.info

    def rows(self) -> pd.DataFrame:
        return self.table.copy()

    def signals(self, rows: pd.DataFrame) -> np.ndarray:
        return self.reader().signals(rows)

    def reader(self) -> "ArrayReader":
        """What a shard worker needs to read rows: the file, not the row table (sent to each worker once)."""
        return ArrayReader(self.path, self.offset, len(self.table), self.length, self.labels)


@dataclass
class ArrayReader:
    """Rows of an ArraySource's float32 [N, L] file, memory-mapped for each read."""
    path: Path
    offset: int
    n: int
    length: int
    labels: list[str]

    def signals(self, rows: pd.DataFrame) -> np.ndarray:
        data = np.memmap(self.path, dtype=np.float32, mode="r", offset=self.offset, shape=(self.n, self.length))
        return np.asarray(data[rows["row"].to_numpy()])


@dataclass
class Part:
    """A reader's output: signals with their label rows, and what the reader already knows about them."""
    signals: np.ndarray | list       # [n, L'] array or a list of 1-D signals
    labels: pd.DataFrame
    where: str                       # the file or record, for messages
    source: str                      # the group counted per source in the manifest
    reasons: np.ndarray | None = None   # problems found by the reader ('' = none)
    check_beats: bool = False        # judge beats, rate and template match in the shard workers
    given_split: str | None = None


def fix_length(samples, length: int, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """List/array of 1-D signals -> float32 [N, length] and a reason per row ('' or 'wrong_length')."""
    if isinstance(samples, np.ndarray) and samples.ndim == 2 and samples.shape[1] == length:
        return np.asarray(samples, np.float32), np.full(len(samples), "", dtype=object)
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


def condition_rows(signals: np.ndarray, fs: float, cfg: PrepConfig) -> tuple[np.ndarray, np.ndarray]:
    """Array sources that opt in (condition.arrays): each row conditioned in place (no resampling, no edges
    dropped, no windows) with its raw-scale verdict."""
    in_place = replace(cfg.condition, edge_s=0.0, max_gap_s=0.0)
    out, reasons = np.zeros_like(signals, dtype=np.float32), np.full(len(signals), "", dtype=object)
    for i, x in enumerate(signals):
        c = condition(x, fs, fs, in_place, cfg.quality)
        if len(c.segments) != 1 or len(c.segments[0].x) != len(x):
            reasons[i] = "non_finite"
            continue
        seg = c.segments[0]
        out[i] = seg.x
        reasons[i] = raw_reason(*seg.flags.window(0, len(x)), cfg.quality)
    return out, reasons


def duplicate_reasons(keys: pd.Series) -> np.ndarray:
    """'duplicate' for every repeat of a key (segment_id when given, else a hash of the signal bytes)."""
    return np.where(keys.duplicated().to_numpy(), "duplicate", "")


def _wfdb_signal_file(path: Path) -> bool:
    """A .mat beside a .hea of the same name is that WFDB record's signal file (the PhysioNet Challenge layout),
    not a PulseDB subset."""
    return path.suffix == ".mat" and path.with_suffix(".hea").is_file()


def _expand(paths: list[str], labels_path: Path | None) -> list[Path]:
    """Files of --source paths; in a directory, every readable kind except label tables (labels.csv, --labels)."""
    skip = {labels_path.resolve()} if labels_path else set()
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.resolve() not in skip and (
                q.suffix in ARRAY_SUFFIXES + (".hea", ".vital")
                or (q.suffix == ".csv" and q.name != "labels.csv" and not q.with_suffix(".npy").exists())))
            segments = segment_records([q for q in found if q.suffix == ".hea"])
            found = [q for q in found if not (q.suffix == ".hea" and q.stem in segments) and not _wfdb_signal_file(q)]
            if not found:
                raise UserError(f"--source {p}: no .pickle/.npz/.npy/.mat/.csv/.hea/.vital files inside")
            out += found
        elif p.exists():
            out.append(p.with_suffix(".hea") if _wfdb_signal_file(p) else p)
        else:
            raise UserError(f"--source {p}: no such file or directory")
    return out


def _array_parts(f: Path, cfg: PrepConfig, workdir: Path) -> Iterator[Part]:
    """The parts of one array file (pickle, npz, npy + table, PulseDB subset), in chunks where it is large."""
    if f.suffix in (".pickle", ".pkl"):
        try:
            samples, labels = load_reference_pickle(f, workdir)
        except ValueError as exc:
            raise UserError(f"{f}: {exc}") from None
        yield Part(samples, labels, str(f), str(f), given_split=REFERENCE_TRIO.get(f.name))
    elif f.suffix == ".npz":
        for signals, labels in read_npz(f, CHUNK):
            yield Part(signals, labels, str(f), str(f))
    elif f.suffix == ".npy":
        chunks, labels = read_npy_with_table(f, CHUNK)
        for s, signals in zip(range(0, len(labels), CHUNK), chunks):
            yield Part(signals, labels.iloc[s:s + CHUNK].reset_index(drop=True), str(f), str(f))
    else:
        from data_prep.readers.pulsedb import read_pulsedb
        for signals, labels in read_pulsedb(f, CHUNK):
            yield Part(signals, labels, str(f), str(f))


def _recording_parts(files: list[Path], cfg: PrepConfig, fs_flag: float | None, labels_path: Path | None,
                     records: list[dict], skipped: dict[str, list[str]]) -> Iterator[Part]:
    """One part per recording: conditioned windows, the record's labels, its raw-scale verdicts. Recordings without
    a label row or below the minimum rate, and label rows without a recording, go to `skipped`."""
    table = label_table(files, labels_path)
    matched, lowest = set(), min_rate(cfg)
    for path in files:
        key = _label_key(table, record_name(path))
        if key is None:
            skipped["recordings without a label row"].append(path.name)
            continue
        matched.add(key)
        if path.suffix == ".vital":
            from data_prep.readers.vitaldb import read_vital
            rec = read_vital(path, cfg.data)
        elif path.suffix == ".hea":
            rec = read_wfdb_recording(path, cfg.data)
        else:
            rec = read_csv_recording(path, cfg.data)
        row = table.loc[key]
        fs = record_rate(rec, row, fs_flag, str(path))
        if fs < lowest:
            skipped[f"recordings below {lowest:g} Hz"].append(f"{path.name} ({fs:g} Hz)")
            continue
        windows, reasons, info = record_windows(rec, fs, cfg)
        records.append(info)
        labels = pd.DataFrame([row.drop(labels=["fs", "source"], errors="ignore").to_dict()] * len(windows))
        if "subject_id" not in labels:
            labels["subject_id"] = key
        labels["segment_id"] = [f"{rec.name}:{i}" for i in range(len(windows))]
        source = str(row["source"]) if "source" in row and pd.notna(row["source"]) else str(path.parent)
        yield Part(windows, labels, str(path), source, reasons, check_beats=True)
    skipped["label rows without a recording"] += [k for k in table.index if k not in matched]


def _label_key(table: pd.DataFrame, name: str) -> str | None:
    """The label table's key for a record: its name, or a MIMIC-III record's subject (None: no row)."""
    return next((k for k in (name, mimic_subject(name)) if k is not None and k in table.index), None)


def _report_skipped(skipped: dict[str, list[str]]) -> dict:
    """One warning line for everything the readers passed over; the manifest's account of it (counts, first names)."""
    found = {what: names for what, names in skipped.items() if names}
    if found:
        log.warning("prep: skipped %s; see the manifest's source.skipped", "; ".join(
            f"{len(names)} {what} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
            for what, names in found.items()))
    return {what: {"count": len(names), "first": names[:20]} for what, names in found.items()}


def _in_place(files: list[Path], cfg: PrepConfig) -> int | None:
    """The data offset of a lone float32 [N, signal_length] `.npy` that prep can read where it lies (nothing to
    convert, condition or resize), else None: the signals are then copied into one file beside the output."""
    if len(files) != 1 or files[0].suffix != ".npy" or cfg.condition.arrays:
        return None
    try:
        shape, fortran, dtype, offset = npy_file_header(files[0])
    except (OSError, ValueError):
        return None   # the reader reports what is wrong with it
    ok = dtype == np.dtype("<f4") and not fortran and len(shape) == 2 and shape[1] == cfg.data.signal_length
    return offset if ok else None


def _part_rows(part: Part, cfg: PrepConfig, first_row: int) -> tuple[np.ndarray, pd.DataFrame]:
    """One part's signals at the configured length (little-endian float32, contiguous: hashed and written without
    copies) and its label table with the columns prep keeps beside them: subject id (each row its own subject when
    the part has none, numbered from `first_row`), the duplicate key, the quarantine reason, the source, whether
    the beats are still to be checked, and the given split."""
    data = cfg.data
    signals, reasons = fix_length(part.signals, data.signal_length, data.length_policy)
    if cfg.condition.arrays and not part.check_beats:
        signals, conditioned = condition_rows(signals, data.fs, cfg)
        reasons = np.where(reasons != "", reasons, conditioned)
        part.check_beats = True
    if part.reasons is not None:
        reasons = np.where(reasons != "", reasons, part.reasons)
    labels = map_labels(pd.DataFrame(part.labels).reset_index(drop=True), data)
    if "subject_id" not in labels:
        labels["subject_id"] = [f"{Path(part.where).stem}:{first_row + i}" for i in range(len(labels))]
        log.warning("%s: no subject_id column; each row is treated as its own subject", part.where)
    labels["subject_id"] = labels["subject_id"].astype(str)
    signals = np.ascontiguousarray(signals, dtype="<f4")
    if "segment_id" not in labels:
        labels["_key"] = [hashlib.blake2b(r, digest_size=16).hexdigest() for r in signals]
    labels["_reason"], labels["_source"], labels["_check_beats"] = reasons, part.source, part.check_beats
    if part.given_split:
        labels["given_split"] = part.given_split
    return signals, labels


def open_files(paths: list[str], cfg: PrepConfig, fs: float | None, workdir: Path,
               labels_path: Path | None = None) -> ArraySource:
    """Stream every --source path into one ArraySource (with any given train/val/test split kept)."""
    data, length = cfg.data, cfg.data.signal_length
    files = _expand(paths, labels_path)
    recordings = [f for f in files if f.suffix in RECORDING_SUFFIXES]
    records: list[dict] = []
    skipped: dict[str, list[str]] = collections.defaultdict(list)
    parts = (p for f in files if f.suffix in ARRAY_SUFFIXES for p in _array_parts(f, cfg, workdir))
    workdir.mkdir(parents=True, exist_ok=True)
    offset = _in_place(files, cfg)
    out_path, tables, digest, n = workdir / SIGNALS if offset is None else files[0], [], hashlib.sha256(), 0
    with open(workdir / SIGNALS, "wb") if offset is None else contextlib.nullcontext() as out:
        recording_parts = _recording_parts(recordings, cfg, fs, labels_path, records, skipped) if recordings else ()
        for part in itertools.chain(parts, recording_parts):
            signals, labels = _part_rows(part, cfg, n)
            if out is not None:
                out.write(signals)
            digest.update(signals)
            tables.append(labels)
            n += len(labels)
    account = _report_skipped(skipped)
    if not tables or n == 0:
        raise UserError(f"--source {' '.join(paths)}: no signals could be read ("
                        + ("; ".join(f"{v['count']} {k}" for k, v in account.items()) or
                           "every recording too short or empty") + ")")
    table = pd.concat(tables, ignore_index=True)
    given = table["given_split"].notna() if "given_split" in table else pd.Series(False, index=table.index)
    if given.any() and not given.all():
        raise UserError("--source mixes the reference train/validation/test pickles with other files; "
                        "pass the trio alone or rename the pickles to have them split here")
    keys = table["segment_id"].astype(str) if "segment_id" in table else table.pop("_key")
    table = table.drop(columns=["_key"], errors="ignore")
    table["_reason"] = np.where(table["_reason"] == "", duplicate_reasons(keys), table["_reason"])
    labels = resolve_labels(data, tables, " + ".join(paths))
    check_units(table, labels, " + ".join(paths))
    categories = encode_categories(table, data.categories, " + ".join(paths))
    table.insert(0, "row", np.arange(len(table), dtype=np.int64))
    digest.update(pd.util.hash_pandas_object(table.drop(columns=["_reason"]), index=False).values.tobytes())
    info = {"kind": "files", "paths": [str(f) for f in files], "formats": sorted({f.suffix for f in files}),
            "given_split": bool(given.any()), "content_sha256": digest.hexdigest()}
    if recordings or cfg.condition.arrays:
        info["conditioning"] = describe_conditioning(cfg.condition, data.fs)
    if records:
        info["records"] = records
    if account:
        info["skipped"] = account
    return ArraySource(out_path, length, table, labels + list(categories), info, offset or 0, categories)


def open_source(paths: list[str], cfg: PrepConfig, fs: float | None, workdir: Path, labels_path: Path | None = None):
    """The simulator when no paths are given, else the file readers."""
    if not paths and cfg.data.categories:
        raise UserError("data.categories needs --source files: the built-in simulator is one source without "
                        "categorical columns; drop data.categories or pass --source")
    return open_files(paths, cfg, fs, workdir, labels_path) if paths else SimulatorSource(cfg.simulate, cfg.data)


def write_reference_pickle(path: Path, signals: np.ndarray, labels: pd.DataFrame) -> None:
    """Write the reference study's pickle layout (used to exercise that reader end to end)."""
    with open(path, "wb") as fh:
        pickle.dump({"labels": labels.reset_index(drop=True), "samples": list(signals)}, fh, protocol=4)
