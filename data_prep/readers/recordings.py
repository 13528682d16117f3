"""Raw recordings (CSV columns, WFDB records): the rate and labels per record, conditioning, windows with a
raw-scale quality verdict."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.common import UserError
from data_prep.conditioning import condition
from data_prep.quality import raw_reason
from data_prep.readers.arrays import read_label_table
from data_prep.settings import DataConfig, PrepConfig

TIME_COLUMNS = {"time", "timestamp", "t", "time_s", "time_ms", "timestamp_ms", "seconds", "ms"}


@dataclass
class Recording:
    name: str                # joins the label table's `record` column
    x: np.ndarray            # raw samples (NaN where missing)
    fs: float | None         # the rate the record itself carries (WFDB header, time column), if any


def record_name(path: Path) -> str:
    """The name that joins a recording to the label table's `record` column: the file name without extension (a
    VitalDB case file's case id, without leading zeros)."""
    return str(int(path.stem)) if path.suffix == ".vital" and path.stem.isdigit() else path.stem


def read_csv_recording(path: Path, data: DataConfig) -> Recording:
    """One recording per CSV: the PPG column (data.raw_column, or the only numeric non-time column)."""
    table = read_label_table(path)
    time_cols = [c for c in table.columns if str(c).strip().lower() in TIME_COLUMNS]
    if data.raw_column in time_cols:
        raise UserError(f"{path}: data.raw_column={data.raw_column!r} is a time axis, not a signal; "
                        "name the PPG column")
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and c not in time_cols]
    if not data.raw_column and len(numeric) != 1:
        raise UserError(f"{path}: {'no numeric column' if not numeric else 'several numeric columns'} "
                        f"({', '.join(map(str, numeric)) or 'has ' + ', '.join(map(str, table.columns))}); "
                        "set data.raw_column to the PPG column")
    column = data.raw_column or numeric[0]
    if column not in table:
        raise UserError(f"{path}: no column {column!r} (has {', '.join(map(str, table.columns))}); set data.raw_column")
    fs = _rate_from_time(table[time_cols[0]], path) if time_cols else None
    return Recording(record_name(path), pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64), fs)


def _rate_from_time(t: pd.Series, path: Path) -> float:
    """Sampling rate from a time column in seconds, or milliseconds (named *ms, or steps of more than 1)."""
    step = float(np.nanmedian(np.diff(pd.to_numeric(t, errors="coerce").to_numpy(np.float64))))
    if not np.isfinite(step) or step <= 0:
        raise UserError(f"{path}: time column {t.name!r} does not increase; pass --fs HZ")
    if str(t.name).lower().endswith("ms") or step > 1:
        step /= 1000.0
    return round(1.0 / step, 6)   # 250.0, not 249.99999999999977 from float time stamps


def _wfdb_size_problem(header, folder: Path) -> str | None:
    """What a (single- or multi-segment) WFDB header claims beyond what its signal files hold (None: nothing): read
    before the samples, so that a header cannot make the reader allocate more than the files could fill."""
    from wfdb.io._signal import BYTES_PER_SAMPLE
    if getattr(header, "seg_name", None):   # multi-segment: each segment is a record with its own header
        import wfdb
        for seg, length in zip(header.seg_name, header.seg_len):
            if seg != "~" and length and (folder / f"{seg}.hea").is_file():   # (the layout segment has none)
                problem = _wfdb_size_problem(wfdb.rdheader(str(folder / seg)), folder)
                if problem:
                    return problem
        return None
    need: dict[str, float] = {}
    for name, fmt in zip(header.file_name or [], header.fmt or []):
        rate = BYTES_PER_SAMPLE.get(str(fmt))
        # FLAC-compressed formats (508/516/524): at most 100-fold compression
        need[name] = need.get(name, 0) + (header.sig_len or 0) * (rate if rate else 0.01 * int(str(fmt)[1:]) / 8)
    for name, size in need.items():
        path = folder / name
        have = path.stat().st_size if path.is_file() else 0
        if size > have + 16:
            return f"its header claims {header.sig_len} samples, more than {name} ({have:,} bytes) holds"
    return None


def read_wfdb_recording(path: Path, data: DataConfig) -> Recording:
    """A WFDB record (single or multi-segment; gaps between segments are NaN) and its channel."""
    import wfdb
    try:
        problem = _wfdb_size_problem(wfdb.rdheader(str(path.with_suffix(""))), path.parent)
        if problem:
            raise UserError(f"{path}: {problem}; the record is truncated or its header is wrong")
        record = wfdb.rdrecord(str(path.with_suffix("")))
    except UserError:
        raise
    except Exception as exc:   # wfdb raises many types for damaged headers and signal files
        raise UserError(f"{path}: unreadable WFDB record ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not record.sig_name or record.p_signal is None or record.p_signal.ndim != 2:
        raise UserError(f"{path}: the WFDB record holds no signals")
    names = [str(n).upper() for n in record.sig_name]
    if data.raw_channel:
        if data.raw_channel.upper() not in names:
            raise UserError(f"{path}: no channel {data.raw_channel!r} (has {', '.join(map(str, record.sig_name))}); "
                            "fix data.raw_channel")
        ch = names.index(data.raw_channel.upper())
    else:
        ch = next((i for i, n in enumerate(names) if "PLETH" in n or "PPG" in n), None)
        if ch is None:
            raise UserError(f"{path}: no PLETH/PPG channel (has {', '.join(map(str, record.sig_name))}); set "
                            "data.raw_channel")
    return Recording(record_name(path), record.p_signal[:, ch].astype(np.float64), float(record.fs))


def label_table(paths: list[Path], labels_path: Path | None) -> pd.DataFrame:
    """The per-record label table (`record` column, labels, optional `fs`, `subject_id`, `source`), indexed by
    record: --labels FILE, else labels.csv beside the recordings."""
    tables = [labels_path] if labels_path else sorted({p.parent / "labels.csv" for p in paths})
    missing = [t for t in tables if not t.is_file()]
    if missing:
        raise UserError(f"{missing[0]} not found: raw recordings need a label table with a 'record' column (file "
                        "name without extension) and the label columns; put labels.csv beside them or pass --labels")
    table = pd.concat([read_label_table(t) for t in tables], ignore_index=True)
    for alias in ("caseid", "subject_id"):   # VitalDB clinical table; MIMIC-III per-subject table
        if "record" not in table and alias in table:
            table = table.rename(columns={alias: "record"})
    if "record" not in table:
        raise UserError(f"{tables[0]}: needs a 'record' column naming each recording (or caseid / subject_id)")
    record = table["record"]
    if record.isna().any():
        raise UserError(f"{tables[0]}: row {int(record.isna().to_numpy().argmax()) + 1} has no record name; fill it "
                        "in or remove the row")
    if pd.api.types.is_float_dtype(record) and (record == record.round()).all():
        record = record.astype("int64")    # case ids read as floats: 1.0 -> '1'
    table["record"] = record.astype(str)
    odd = table["record"][table["record"].str.contains(r"[/\\]|^\.{0,2}$", regex=True)]
    if len(odd):
        raise UserError(f"{tables[0]}: record {odd.iloc[0]!r} is not a plain record name (the recording's file name "
                        "without folder or extension); fix that row")
    duplicated = table["record"][table["record"].duplicated()]
    if len(duplicated):
        raise UserError(f"{tables[0]}: record {duplicated.iloc[0]!r} has more than one row")
    return table.set_index("record")


def record_rate(rec: Recording, row: pd.Series, fs_flag: float | None, where: str) -> float:
    """The record's own rate, else the table's `fs` column, else --fs."""
    for fs in (rec.fs, row.get("fs"), fs_flag):
        if fs is not None and np.isfinite(float(fs)):
            if not 0 < float(fs) <= 100_000:
                raise UserError(f"{where}: sampling rate {fs} Hz is not plausible; fix the fs column or --fs")
            return float(fs)
    raise UserError(f"{where}: no sampling rate; add an 'fs' column to the label table, a time column, or pass --fs HZ")


def min_rate(cfg: PrepConfig) -> float:
    """The lowest sampling rate a recording may have (Hz): its Nyquist frequency must pass the third harmonic of the
    fastest pulse the quality check accepts (quality.hr_max), since the fundamental and the next two harmonics carry
    the beat's shape (upstroke, systolic peak, dicrotic notch), and leave room above the band-pass's low edge.
    18 Hz with the defaults."""
    return max(2 * 3 * cfg.quality.hr_max / 60.0, 2.5 * cfg.condition.low_hz)


def windows(x: np.ndarray, length: int, overlap: float) -> np.ndarray:
    """Start indices of fixed windows of `length` with the given fractional overlap; a short tail is dropped."""
    step = max(1, int(round(length * (1 - overlap))))
    return np.arange(0, len(x) - length + 1, step)


def record_windows(rec: Recording, fs_in: float, cfg: PrepConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Condition a whole recording and cut it into windows: (windows float32 [n, L], raw-scale reasons, info)."""
    length = cfg.data.signal_length
    cond = condition(rec.x, fs_in, cfg.data.fs, cfg.condition, cfg.quality)
    out, reasons = [], []
    for seg in cond.segments:
        for s in windows(seg.x, length, cfg.data.window_overlap):
            out.append(seg.x[s:s + length])
            a, b = seg.raw_index[s], seg.raw_index[s + length - 1] + 1
            reasons.append(raw_reason(*seg.flags.window(a, b), cfg.quality))
    n = len(out)
    info = {"record": rec.name, "fs": fs_in, "seconds": round(len(rec.x) / fs_in, 2), "windows": n,
            "inverted": bool(cond.inverted), "unwrapped": cond.unwrapped, "gaps_interpolated": cond.gaps_interpolated,
            "splits": cond.splits}
    return np.array(out, np.float32).reshape(n, length), np.array(reasons, dtype=object), info
