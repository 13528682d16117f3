"""A .npz whose members inflate is refused before reading, under a memory limit in a child process."""
import subprocess
import sys
import zipfile

import numpy as np

from conftest import REPO, SMOKE

def peak_rss_mib(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`ppg-cvae ARGS` in a fresh process, with the peak resident memory of that process (MiB)."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(r.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); "
            "sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "launch.cli", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    return result, float(result.stdout.split()[-1])


def npz_member(zf: zipfile.ZipFile, name: str, shape: tuple, dtype: str, write_rows) -> None:
    """An .npy member written block by block (`write_rows(fh)`), as np.savez would lay it out."""
    with zf.open(name + ".npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_2_0(fh, {"descr": dtype, "fortran_order": False, "shape": shape})
        write_rows(fh)


def test_npz_members_stream_and_an_inflating_archive_is_refused_before_reading(tmp_path):
    n = 3 << 20       # 3 Mi rows of 1024 float32 zeros: 12 GiB once inflated, 56 MB deflated
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        npz_member(zf, "signals", (n, 1024), "<f4", lambda fh: [fh.write(bytes(64 << 20)) for _ in range(192)])
        npz_member(zf, "age", (n,), "<f8", lambda fh: fh.write(np.full(n, 40.0).tobytes()))
    result, peak = peak_rss_mib("prep", "--config", str(SMOKE), "--out", str(tmp_path / "out"),
                                "--source", str(tmp_path / "bomb.npz"))
    assert result.returncode == 2 and "inflates 2" in result.stderr and "refused before reading" in result.stderr
    assert peak < 1024, peak
    # 48,000 signals (188 MiB, stored): read in chunks, so the peak stays far below the archive's size
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "big.npz", "w", zipfile.ZIP_STORED) as zf:
        npz_member(zf, "signals", (48_000, 1024), "<f4", lambda fh: [
            fh.write(rng.standard_normal((4000, 1024)).astype("<f4").tobytes()) for _ in range(12)])
        npz_member(zf, "age", (48_000,), "<f8", lambda fh: fh.write(rng.uniform(20, 80, 48_000).tobytes()))
        npz_member(zf, "subject_id", (48_000,), "<i8", lambda fh: fh.write(np.arange(48_000).tobytes()))
    code = ("import resource, sys; from pathlib import Path; from cvae.config import load_config; "
            "from data_prep.sources import open_files; before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            f"s = open_files([{str(tmp_path / 'big.npz')!r}], load_config({str(SMOKE)!r}), None, "
            f"Path({str(tmp_path / 'w')!r})); rows = s.rows(); "
            "print(len(rows), rows['age'].between(20, 80).all(), "
            "(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    count, ages_ok, grown = out.stdout.split()
    assert (count, ages_ok) == ("48000", "True"), out.stderr[-2000:]
    assert float(grown) < 100, grown           # chunks of 8,192 rows (32 MiB) and the row table, not 188 MiB
    signals = np.memmap(tmp_path / "w" / ".source-signals.f32", np.float32, "r", shape=(48_000, 1024))
    assert np.array_equal(signals[-1], np.load(tmp_path / "big.npz")["signals"][-1])
