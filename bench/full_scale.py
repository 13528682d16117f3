"""bench/full_scale.py: the reference study's whole pipeline at full scale on this machine, stage by stage.

  prep       configs/default.yaml: 327,054 simulated signals -> 80 shards
  train      one epoch on 2 Horovod ranks (Gloo, CPU): epoch time, signals/s, then the model's export
  generate   81 ages (18-98) x 1,000 signals
  evaluate   the report against the real test split (large sets sampled)
  reference  the reference study's loader (every segment of the three pickles kept as Python lists of float64
             arrays) vs our prep streaming the same trio: peak memory of each
Every stage is its own process tree; its peak RSS is the largest process in it. Prints one BENCH line with the
wall time and peak RSS of each stage and the projected time of a full training run (train.epochs epochs) here.
Usage: python bench/full_scale.py [--dir DIR] [--skip reference]
"""
from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import report, timed  # noqa: E402

CONFIG = REPO / "configs" / "default.yaml"


def stage(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, largest process of the tree) of one stage."""
    return timed(args, env=dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "launch.cli", *args]


def reference_loader(folder: str) -> None:
    """The reference study's way: load each pickle and keep every segment as a float64 array in a Python list."""
    import numpy as np
    kept = {}
    for name in ("train_db_1p.pickle", "validation_db_1p.pickle", "test_db_1p.pickle"):
        with open(Path(folder) / name, "rb") as fh:
            obj = pickle.load(fh)
        kept[name] = ([np.asarray(s, dtype=np.float64) for s in obj["samples"]], obj["labels"])
        del obj
    print(sum(len(v[0]) for v in kept.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None, help="work directory (default a temporary one, removed after)")
    ap.add_argument("--skip", action="append", default=[], choices=["reference"])
    ap.add_argument("--config", default=str(CONFIG), help="another scale, to try the bench (default.yaml by default)")
    ap.add_argument("--reference-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference_child:
        return reference_loader(args.reference_child)
    from cvae.config import load_config
    from data_prep.manifest import load_manifest
    config = args.config
    cfg = load_config(config)
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        data, run, syn = work / "data", work / "run", work / "synthetic.npz"
        rows = {}
        rows["prep_s"], rows["prep_rss_mib"] = stage(cli("prep", "--config", config, "--out", str(data)))
        from launch.horovod import horovodrun_command
        rows["train_s"], rows["train_rss_mib"] = stage(horovodrun_command(2, [
            "train", "--config", config, "--data", str(data), "--run-dir", str(run), "train.epochs=1",
            "train.threads_per_rank=1", "train.image_every=0"]))
        import json
        rank0 = json.loads((run / "ranks" / "rank-000.json").read_text())
        epoch_s = rank0["epoch_seconds"][0]
        rows.update(epoch_s=epoch_s, train_signals_per_s=rank0["signals_per_epoch"] / epoch_s,
                    train_signals=load_manifest(data).splits["train"].count,
                    projected_full_training_h=cfg.train.epochs * epoch_s / 3600)
        rows["generate_s"], rows["generate_rss_mib"] = stage(cli("generate", "--model", str(run), "--ages", "18:98",
                                                                 "--n-per-age", "1000", "--out", str(syn)))
        rows["evaluate_s"], rows["evaluate_rss_mib"] = stage(cli("evaluate", "--synthetic", str(syn), "--data",
                                                                 str(data), "--out", str(work / "report")))
        if "reference" not in args.skip:
            trio = work / "trio"
            stage(cli("prep", "--config", config, "--out", str(trio), "--as-reference-pickles"))
            rows["reference_loader_s"], rows["reference_loader_rss_mib"] = stage(
                [sys.executable, __file__, "--reference-child", str(trio)])
            rows["prep_from_trio_s"], rows["prep_from_trio_rss_mib"] = stage(
                cli("prep", "--config", config, "--out", str(work / "data-trio"), "--source", str(trio)))
            rows["reference_vs_prep_rss"] = rows["reference_loader_rss_mib"] / rows["prep_from_trio_rss_mib"]
        rows["this_process_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report("full_scale", rows)


if __name__ == "__main__":
    main()
