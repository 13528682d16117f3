"""bench/refine_cost.py: what the decoder's refinement costs in training time on `make real`'s data.

Trains configs/real.yaml on 2 Horovod ranks without and with its refinement, side by side in one run: wall time of
the whole `train` command (start-up, ELBO epochs, refinement epochs, export) and the summed epoch times of each
phase, each as a ratio to the ELBO alone. Usage:
  python bench/refine_cost.py [--data outputs/real/data] [--dir DIR] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import report, timed  # noqa: E402

OPTIONS = {
    "elbo only": ["train.refine.epochs=0"],
    "with refinement": [],   # configs/real.yaml's
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / "outputs" / "real" / "data"))
    ap.add_argument("--dir", default=str(REPO / "outputs" / "refine-cost"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(args.dir)
    rows, base = {}, None
    for name, settings in OPTIONS.items():
        run = work / name.replace(" ", "-").replace(",", "")
        shutil.rmtree(run, ignore_errors=True)
        seconds, _ = timed([sys.executable, "-m", "launch.cli", "launch", "--np", "2", "--", "train", "--config",
                            str(REPO / "configs" / "real.yaml"), "--data", args.data, "--run-dir", str(run),
                            f"train.seed={args.seed}", *settings])
        rank0 = json.loads((run / "ranks" / "rank-000.json").read_text())
        epochs = rank0["epochs_run"]
        elbo, refine = sum(rank0["epoch_seconds"][:epochs]), sum(rank0["epoch_seconds"][epochs:])
        base = base or (seconds, elbo + refine)
        rows[name] = {"wall_s": seconds, "elbo_epochs": epochs, "elbo_s": elbo, "refine_s": refine,
                      "wall_ratio": seconds / base[0], "epoch_time_ratio": (elbo + refine) / base[1]}
        print(f"{name}: {seconds:.0f} s wall ({seconds / base[0]:.2f}x), {epochs} ELBO epochs {elbo:.0f} s, "
              f"refinement {refine:.0f} s ({(elbo + refine) / base[1]:.2f}x the epoch time)", flush=True)
    report("refine_cost", rows)


if __name__ == "__main__":
    main()
