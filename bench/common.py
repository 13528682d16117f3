"""Shared bench helper: the results line format."""
from __future__ import annotations

import json


def report(name: str, rows: dict) -> None:
    """Print a bench's numbers as one JSON line (the PERFORMANCE.md table is copied from these)."""
    print(f"BENCH {name} " + json.dumps(rows, default=lambda x: round(x, 4) if isinstance(x, float) else str(x)))


def cli(*args: str) -> None:
    """Run `ppg-cvae ARGS` from the repository; exits with the tail of its stderr when it fails."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([sys.executable, "-m", "launch.cli", *args], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"ppg-cvae {args[0]} failed:\n{result.stderr[-3000:]}")


def simulated_data(workdir, n_subjects: int, config: str = "configs/default.yaml", segments: int = 6):
    """Prep a simulated cohort of `n_subjects` x `segments` signals into workdir/data-N[xS] (reused when already
    there)."""
    from pathlib import Path

    out = Path(workdir) / (f"data-{n_subjects}" + ("" if segments == 6 else f"x{segments}"))
    if not (out / "manifest.json").exists():
        cli("prep", "--config", str(Path(__file__).resolve().parents[1] / config), "--out", str(out),
            f"simulate.n_subjects={n_subjects}", f"simulate.segments_per_subject={segments}", "data.train_shards=16",
            "data.val_shards=2", "data.test_shards=2")
    return out


def pipeline_rate(data, conditions: list[str], batch: int, epochs: int, shuffle_buffer: int, cache: bool) -> float:
    """Steady-state signals/s of the training input pipeline alone on one rank (epochs after the first)."""
    import time

    from cvae.training.input_pipeline import train_dataset
    from data_prep.manifest import load_manifest

    ds, steps = train_dataset(data, load_manifest(data), conditions, batch, 0, 1, shuffle_buffer, 0, 0, epochs,
                              cache=cache)
    it = iter(ds)
    for _ in range(steps):
        next(it)
    t0 = time.perf_counter()
    for _ in range(steps * (epochs - 1)):
        next(it)
    return steps * (epochs - 1) * batch / (time.perf_counter() - t0)


def timed(command: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, the largest process of the tree) of one command, run from the repository;
    exits with its stderr on failure. GNU time starts it: a child forked from the (possibly large) benchmark process
    would report this process's RSS as its own peak."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kib=%M", *command], cwd=Path(__file__).resolve().parents[1],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command[:5])} failed:\n{proc.stderr[-3000:]}")
    return seconds, int(proc.stderr.rsplit("maxrss_kib=", 1)[1].split()[0]) / 1024
