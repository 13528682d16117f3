"""Readers for signal arrays: `.npz`, `.npy` with a CSV/Parquet label table, and label tables themselves."""
from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from data_prep.common import UserError


def read_label_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table; an unreadable one is a one-line error naming the file."""
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow; pip install pyarrow or use CSV") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: unreadable table ({type(exc).__name__}: {str(exc)[:200]})") from None


MAX_INFLATION = 100   # a compressed .npz member that inflates more than this is mostly one repeated value


def _npz_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, bool, np.dtype]:
    with zf.open(info) as fh:
        return npy_header(fh)


def read_npz(path: Path, chunk: int) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """`.npz` with `signals` [N, L] and one 1-D array of N values per label (plus optional subject_id), as chunks of
    rows streamed from the archive's members side by side: never more than `chunk` rows of any member in memory.
    Members are judged by their headers before any data is read."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise UserError(f"{path}: unreadable .npz ({exc})") from None
    with zf:
        try:
            members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
            if "signals" not in members:
                raise UserError(f"{path}: no 'signals' array (found {', '.join(members) or 'none'})")
            headers = {name: _npz_header(zf, info) for name, info in members.items()}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise UserError(f"{path}: unreadable .npz ({exc}); arrays must be plain numbers (no objects)") from None
        shape, fortran, dtype = headers["signals"]
        labels = [n for n, (s, _, _) in headers.items() if n != "signals" and len(s) == 1]
        if any(headers[n][2].hasobject for n in ["signals"] + labels):
            raise UserError(f"{path}: object arrays are not read; arrays must be plain numbers (no objects)")
        if len(shape) != 2 or fortran or any(headers[n][0] != shape[:1] for n in labels):
            raise UserError(f"{path}: 'signals' must be a C-ordered [N, L] array with one label value per row "
                            f"(signals {shape}, " + ", ".join(f"{n} {headers[n][0]}" for n in labels) + ")")
        info = members["signals"]
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_INFLATION * max(info.compress_size, 1):
            raise UserError(f"{path}: 'signals' inflates {info.file_size / max(info.compress_size, 1):,.0f}-fold "
                            f"({info.compress_size:,} to {info.file_size:,} bytes), above {MAX_INFLATION}-fold: "
                            "mostly one repeated value, not recorded signals; refused before reading")
        yield from _npz_chunks(path, zf, members, headers, ["signals"] + labels, chunk)


def _npz_chunks(path, zf, members, headers, names, chunk) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """The named members read side by side in blocks of `chunk` rows: (signals block, label rows)."""
    with contextlib.ExitStack() as stack:
        blocks = []
        for name in names:
            fh = stack.enter_context(zf.open(members[name]))
            npy_header(fh)
            blocks.append(npy_blocks(fh, *headers[name][::2], chunk))
        try:
            for signals, *values in zip(*blocks):
                yield signals, pd.DataFrame(dict(zip(names[1:], values)))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise UserError(f"{path}: unreadable .npz ({exc})") from None


def npy_header(fh) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran order, dtype) of the .npy array whose header starts at the open binary file's position;
    the position is then at the data. A header numpy cannot parse is a ValueError."""
    try:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return read(fh)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
        raise
    except Exception as exc:   # noqa: BLE001 - numpy's header parser raises SyntaxError, TokenError, TypeError, ...
        raise ValueError(f"unreadable .npy header ({type(exc).__name__}: {str(exc)[:120]})") from None


def npy_file_header(path: Path) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, fortran order, dtype, byte offset of the data) of an .npy file, reading only its header."""
    with open(path, "rb") as fh:
        return *npy_header(fh), fh.tell()


def kept(keep: np.ndarray | None, at: int, n: int):
    """Positions, within rows [at, at + n), of the sorted row indices `keep` (every position when keep is None)."""
    if keep is None:
        return slice(None)
    lo, hi = np.searchsorted(keep, [at, at + n])
    return keep[lo:hi] - at


def npy_blocks(fh, shape: tuple, dtype: np.dtype, rows: int, keep: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """A C-ordered array read from the open file's position in blocks of `rows` rows (only the `keep` rows of each
    when given); a file that ends early is a ValueError."""
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    for at in range(0, shape[0], rows):
        n = min(rows, shape[0] - at)
        data = fh.read(n * row_bytes)
        if len(data) != n * row_bytes:
            raise ValueError(f"the file ends before its {shape[0]} rows; it is truncated")
        yield np.frombuffer(data, dtype=dtype).reshape((n,) + tuple(shape[1:]))[kept(keep, at, n)]


def read_npy_with_table(path: Path, chunk: int) -> tuple[Iterator[np.ndarray], pd.DataFrame]:
    """`x.npy` signals [N, L] with labels in `x.csv` or `x.parquet` beside it: the signals as chunks of rows read
    one after another (never the whole file in memory or mapped at once), and the label table."""
    table = next((p for p in (path.with_suffix(".csv"), path.with_suffix(".parquet")) if p.exists()), None)
    if table is None:
        raise UserError(f"{path}: no label table beside it; add {path.with_suffix('.csv').name} or .parquet")
    try:
        shape, fortran, dtype, offset = npy_file_header(path)
        if dtype.hasobject:
            raise ValueError("object arrays are not read")
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: unreadable .npy ({exc}); arrays must be plain numbers (no objects)") from None
    labels = read_label_table(table)
    if len(shape) != 2 or fortran or len(labels) != shape[0]:
        raise UserError(f"{path}: signals {shape} and {len(labels)} label rows in {table.name} do not match "
                        "(signals must be a C-ordered [N, L] array)")

    def chunks() -> Iterator[np.ndarray]:
        with open(path, "rb") as fh:
            fh.seek(offset)
            try:
                yield from npy_blocks(fh, shape, dtype, chunk)
            except ValueError as exc:
                raise UserError(f"{path}: {exc}") from None

    return chunks(), labels
