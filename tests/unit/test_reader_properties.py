"""Property-based tests of the source readers (hypothesis): random CSV recordings, label tables, .npy and .npz
headers and WFDB headers, each read the way prep reads them. Every example ends in a source or in one UserError
line (prep's exit 2): never another exception, a hang (each example has a deadline) or memory beyond a small bound
(numpy's buffers are traced by tracemalloc)."""
import io
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SMOKE
from cvae.config import load_config
from data_prep.common import UserError
from data_prep.sources import open_files

CFG = load_config(SMOKE, ["condition.edge_s=0.5", "data.signal_length=256", "model.filters=[16]"])
EXAMPLES = settings(max_examples=300, deadline=10_000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
PEAK_BYTES = 64 << 20      # inputs here are at most ~100 kB: a reader that believes a header allocates gigabytes

names = st.sampled_from(["ppg", "PPG", "time", "t", "ms", "age", "record", "fs", "x", "", "a b", "sex", "subject_id"])
cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 40, 2 ** 40),
                  st.text(max_size=6), st.just(""))
pulse = np.sin(2 * np.pi * 1.1 * np.arange(2500) / 125.0)


def read_source(folder: Path, *paths: Path) -> None:
    """open_files as prep calls it; the property: a source, or one line of UserError, within the memory bound."""
    tracemalloc.start()
    try:
        open_files([str(p) for p in paths], CFG, None, folder / "work")
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{peak / 2 ** 20:.0f} MiB"


def csv_text(columns, rows) -> str:
    return "\n".join([",".join(columns)] + [",".join(map(str, r)) for r in rows]) + "\n"


@st.composite
def tables(draw, min_rows=0):
    columns = draw(st.lists(names, min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(cells, min_size=len(columns), max_size=len(columns)), min_size=min_rows,
                         max_size=40))
    return csv_text(columns, rows)


@EXAMPLES
@given(table=st.one_of(tables(), st.text(max_size=400)), fs=st.sampled_from([None, 125.0, 5.0]))
def test_random_csv_recordings(table, fs):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "r.csv").write_text(table)
        (folder / "labels.csv").write_text(f"record,age{',fs' if fs else ''}\nr,40{f',{fs}' if fs else ''}\n")
        read_source(folder, folder)


@EXAMPLES
@given(table=st.one_of(tables(min_rows=1), st.text(max_size=400)))
def test_random_label_tables(table):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "r.csv").write_text(csv_text(["time", "ppg"], zip(np.arange(2500) / 125.0, pulse)))
        (folder / "labels.csv").write_text(table)
        read_source(folder, folder)


descrs = st.sampled_from(["<f4", "<f8", ">f4", "<i2", "|u1", "|O", "<U3", "|S4", "|V8", "<c8", "bogus", "<f16"])
shapes = st.one_of(st.lists(st.integers(-3, 2 ** 40), max_size=3).map(tuple),
                   st.tuples(st.integers(0, 40), st.sampled_from([256, 255, 1])))


def npy_bytes(descr: str, fortran: bool, shape: tuple, data: bytes, raw_header: str | None) -> bytes:
    """An .npy file with any header numpy's writer would produce for that dict (or a raw header text)."""
    text = raw_header if raw_header is not None else repr(
        {"descr": descr, "fortran_order": fortran, "shape": shape})
    header = text.encode("latin1", "replace")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


npy_files = st.builds(npy_bytes, descrs, st.booleans(), shapes, st.binary(max_size=12_000),
                      st.one_of(st.none(), st.text(max_size=80)))


@EXAMPLES
@given(signals=npy_files, rows=st.integers(0, 50))
def test_random_npy_headers(signals, rows):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "x.npy").write_bytes(signals)
        (folder / "x.csv").write_text(csv_text(["age", "subject_id"], [(40, i) for i in range(rows)]))
        read_source(folder, folder / "x.npy")


@EXAMPLES
@given(members=st.lists(st.tuples(st.sampled_from(["signals", "age", "subject_id", "sex", "other"]), npy_files,
                                  st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])), max_size=4),
       garbage=st.one_of(st.none(), st.binary(max_size=300)))
def test_random_npz_members(members, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if garbage is not None:
            (folder / "x.npz").write_bytes(b"PK\x03\x04" + garbage)
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as zf:
                for name, data, kind in members:
                    zf.writestr(name + ".npy", data, compress_type=kind)
            (folder / "x.npz").write_bytes(buffer.getvalue())
        read_source(folder, folder / "x.npz")


header_fields = st.one_of(st.integers(-5, 2 ** 40).map(str), st.sampled_from(["", "x", "125", "1e9", "-1"]),
                          st.floats(allow_nan=True).map(str))
formats = st.sampled_from(["16", "212", "8", "80", "24", "32", "310", "311", "61", "160", "516", "999", "x"])


@EXAMPLES
@given(n_sig=st.integers(0, 3), fs=header_fields, length=header_fields, fmt=formats, gain=header_fields,
       name=st.sampled_from(["PLETH", "II", "PPG", ""]), data=st.binary(max_size=8000),
       raw=st.one_of(st.none(), st.text(max_size=200)))
def test_random_wfdb_headers(n_sig, fs, length, fmt, gain, name, data, raw):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = [f"rec {n_sig} {fs} {length}"] + [f"rec.dat {fmt} {gain}/NU 12 0 0 0 0 {name}"] * n_sig
        (folder / "rec.hea").write_text(raw if raw is not None else "\n".join(lines) + "\n")
        (folder / "rec.dat").write_bytes(data)
        (folder / "labels.csv").write_text("record,age\nrec,40\n")
        read_source(folder, folder / "rec.hea")


def test_the_memory_bound_sees_numpy_buffers():
    """tracemalloc traces numpy's data buffers, so a reader that allocated what a header claims would fail."""
    tracemalloc.start()
    np.ones(PEAK_BYTES // 8 + 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak >= PEAK_BYTES
