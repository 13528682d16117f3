"""bench/input_pipeline.py: the training input pipeline alone on one CPU rank, signals/s at a GPU batch.

Side by side on the same simulated cohort (default 8,400 subjects x 6 = 50,400 signals, ~40,000 in train):
  cached   - train.cache=true: the rank's records decoded once into memory, batches gathered per epoch
  streamed - train.cache=false: records read, parsed and shuffled from the TFRecord shards every epoch
Steady state = epochs after the first. Goal: cached >= 400,000 signals/s (twice what one H200 consumes at batch
1,024, docs/CLUSTER.md). Usage: python bench/input_pipeline.py [--batch 1024] [--epochs 4] [--dir DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import pipeline_rate, report, simulated_data  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--subjects", type=int, default=8400)
    ap.add_argument("--dir", default=None, help="work directory (kept; default a temporary one)")
    args = ap.parse_args()
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data = simulated_data(args.dir or tmp, args.subjects)
        cached = pipeline_rate(data, ["age"], args.batch, args.epochs, 10_000, cache=True)
        streamed = pipeline_rate(data, ["age"], args.batch, args.epochs, 10_000, cache=False)
    report("input_pipeline", {"batch": args.batch, "cached_signals_per_s": cached,
                              "streamed_signals_per_s": streamed, "ratio": cached / streamed,
                              "goal_cached": 400_000, "met": cached >= 400_000})


if __name__ == "__main__":
    main()
