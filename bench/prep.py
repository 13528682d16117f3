"""bench/prep.py: simulate + prep the full 327,054-signal cohort; signals/s, peak RSS, ratio to raw numpy writes.

Side by side in one run on the same disk:
  raw    - the same float32 bytes written with numpy (ndarray.tofile, 64 MiB chunks): the I/O limit
  write  - `ppg-cvae prep --source cohort.npy` over already-simulated signals: validation, normalization,
           duplicate check, TFRecord serialization, checksums (the data path without the simulator)
  full   - `ppg-cvae prep` with the built-in simulator end to end (configs/default.yaml unless --config)
Each prep runs as its own process; its peak RSS is the largest of that process and its workers.
Usage: python bench/prep.py [--config configs/default.yaml] [--write-subset N] [--dir /work/bench-tmp]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import report, timed  # noqa: E402
from cvae.config import load_config  # noqa: E402
from data_prep.sources import SimulatorSource  # noqa: E402


def raw_write(path: Path, n: int, length: int) -> float:
    chunk = np.random.default_rng(0).standard_normal((16384, length)).astype(np.float32)
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        for start in range(0, n, len(chunk)):
            chunk[: min(len(chunk), n - start)].tofile(fh)
    seconds = time.perf_counter() - t0
    path.unlink()
    return seconds


def run_prep(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, largest process of the tree) of one `ppg-cvae prep`."""
    return timed([sys.executable, "-m", "launch.cli", "prep", *args])


def simulate_to_npy(config: str, n_subjects: int, out: Path) -> int:
    """Simulated signals streamed into cohort.npy (+ cohort.csv labels) without holding them in memory."""
    cfg = load_config(config, [f"simulate.n_subjects={n_subjects}"])
    sim = SimulatorSource(cfg.simulate, cfg.data)
    rows = sim.rows()
    arr = np.lib.format.open_memmap(out / "cohort.npy", mode="w+", dtype=np.float32,
                                    shape=(len(rows), cfg.data.signal_length))
    for start in range(0, len(rows), 4096):
        arr[start:start + 4096] = sim.signals(rows.iloc[start:start + 4096])
    arr.flush()
    rows[["subject_id"] + sim.labels].to_csv(out / "cohort.csv", index=False)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    ap.add_argument("--write-subset", type=int, default=0,
                    help="signals in the write-only comparison (default 0: the whole cohort)")
    ap.add_argument("--dir", default=None, help="scratch directory on the disk to measure (default: a temp dir)")
    args = ap.parse_args()
    cfg = load_config(args.config)
    n = cfg.simulate.n_subjects * cfg.simulate.segments_per_subject
    length = cfg.data.signal_length
    root = Path(tempfile.mkdtemp(prefix="ppg-bench-", dir=args.dir))
    try:
        (root / "src").mkdir()
        subjects = (args.write_subset or n) // cfg.simulate.segments_per_subject
        m = simulate_to_npy(args.config, subjects, root / "src")
        raw_subset = raw_write(root / "raw.bin", m, length)
        write_s, write_rss = run_prep(["--config", args.config, "--out", str(root / "w"),
                                       "--source", str(root / "src" / "cohort.npy")])
        raw_full = raw_write(root / "raw.bin", n, length)
        full_s, full_rss = run_prep(["--config", args.config, "--out", str(root / "full")])
        report("prep", {
            "signals": n, "full_s": full_s, "full_signals_per_s": n / full_s, "raw_full_s": raw_full,
            "full_vs_raw": full_s / raw_full, "full_peak_rss_mib": full_rss,
            "write_signals": m, "write_s": write_s, "write_signals_per_s": m / write_s,
            "raw_subset_s": raw_subset, "write_vs_raw": write_s / raw_subset, "write_peak_rss_mib": write_rss,
            "workers": cfg.data.workers, "cores": os.cpu_count()})
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
