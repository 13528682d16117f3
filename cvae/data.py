"""tf.data input pipelines from the shards: rank-sharded training stream with exact steps, full validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from data_prep.manifest import shard_paths
from data_prep.shards import parse_fn
from launch.errors import UserError

AUTOTUNE = tf.data.AUTOTUNE


def condition_scaler(manifest: dict, conditions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of each condition label on the training split, from the manifest."""
    missing = [c for c in conditions if c not in manifest["labels"]]
    if missing:
        raise UserError(f"model.conditions {missing} are not labels of this dataset "
                        f"(it has {sorted(manifest['labels'])}); fix model.conditions or re-run prep")
    mean = np.array([manifest["labels"][c]["mean"] for c in conditions], np.float32)
    std = np.array([manifest["labels"][c]["std"] for c in conditions], np.float32)
    return mean, std


def _records(files: list[Path], manifest: dict, conditions: list[str], parallel: bool):
    """Dataset of (signal, normalized condition) from the given shard files."""
    compression = "GZIP" if manifest["compression"] == "gzip" else ""
    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
                       cycle_length=min(4, max(len(files), 1)), num_parallel_calls=AUTOTUNE if parallel else None,
                       deterministic=True)
    mean, std = condition_scaler(manifest, conditions)
    parse = parse_fn(conditions, manifest["signal_length"])
    return ds.map(lambda s: (lambda x, y: (x, (y - mean) / std))(*parse(s)),
                  num_parallel_calls=AUTOTUNE if parallel else None, deterministic=True)


def rank_plan(manifest: dict, rank: int, size: int, batch_size: int) -> tuple[str, list[int], int]:
    """How this rank reads the train split and the common steps per epoch.

    Files are dealt to ranks when there are at least as many shards as ranks, else every rank reads
    every file and keeps one element in `size`. Steps = the smallest rank's full batches, so every
    rank runs exactly the same number of steps and no collective waits on a rank that ran dry.
    """
    shards = manifest["splits"]["train"]["shards"]
    counts = [s["count"] for s in shards]
    if len(shards) >= size:
        per_rank = [sum(counts[r::size]) for r in range(size)]
        mode, files = "files", list(range(rank, len(shards), size))
    else:
        total = sum(counts)
        per_rank = [total // size + (1 if r < total % size else 0) for r in range(size)]
        mode, files = "elements", list(range(len(shards)))
    steps = min(per_rank) // batch_size
    if steps < 1:
        raise UserError(f"the train split gives a rank only {min(per_rank)} signals, fewer than one batch of "
                        f"{batch_size}; lower train.batch_size, use fewer ranks or prepare more data")
    return mode, files, steps


def train_dataset(data_dir, manifest: dict, conditions: list[str], batch_size: int, rank: int, size: int,
                  shuffle_buffer: int, seed: int) -> tuple[tf.data.Dataset, int]:
    """Endless shuffled stream of full batches for this rank, and the steps per epoch."""
    mode, file_idx, steps = rank_plan(manifest, rank, size, batch_size)
    paths = shard_paths(data_dir, manifest, "train")
    ds = _records([paths[i] for i in file_idx], manifest, conditions, parallel=True)
    if mode == "elements":
        ds = ds.shard(size, rank)
    ds = ds.shuffle(shuffle_buffer, seed=seed + rank, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE), steps


def eval_dataset(data_dir, manifest: dict, split: str, conditions: list[str], batch_size: int) -> tf.data.Dataset:
    """Every record of a split, in order, in batches (the last one may be short)."""
    if manifest["splits"][split]["count"] == 0:
        raise UserError(f"the {split} split is empty; raise data.{split}_fraction or prepare more subjects")
    ds = _records(shard_paths(data_dir, manifest, split), manifest, conditions, parallel=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
