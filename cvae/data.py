"""tf.data input pipelines from the shards: rank-sharded training stream with exact steps, full validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from data_prep.manifest import Manifest, shard_paths
from data_prep.shards import parse_fn
from data_prep.errors import UserError

AUTOTUNE = tf.data.AUTOTUNE


def condition_scaler(manifest: Manifest, conditions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of each condition label on the training split, from the manifest."""
    missing = [c for c in conditions if c not in manifest.labels]
    if missing:
        raise UserError(f"model.conditions {missing} are not labels of this dataset "
                        f"(it has {sorted(manifest.labels)}); fix model.conditions or re-run prep")
    mean = np.array([manifest.labels[c].mean for c in conditions], np.float32)
    std = np.array([manifest.labels[c].std for c in conditions], np.float32)
    return mean, std


def _serialized(files: list[Path], manifest: Manifest) -> tf.data.Dataset:
    """The raw records of the given shard files, interleaved in a fixed order."""
    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    return ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=manifest.tf_compression),
                         cycle_length=min(4, max(len(files), 1)), num_parallel_calls=AUTOTUNE, deterministic=True)


def _parser(manifest: Manifest, conditions: list[str]):
    """serialized Example -> (signal, condition normalized with the training-split statistics)."""
    mean, std = condition_scaler(manifest, conditions)
    parse = parse_fn(conditions, manifest.signal_length)

    def fn(serialized):
        signal, labels = parse(serialized)
        return signal, (labels - mean) / std

    return fn


def rank_plan(manifest: Manifest, rank: int, size: int, batch_size: int) -> tuple[str, list[int], int]:
    """How this rank reads the train split and the common steps per epoch.

    Files are dealt to ranks when there are at least as many shards as ranks, else every rank reads
    every file and keeps one element in `size`. Steps = the smallest rank's full batches, so every
    rank runs exactly the same number of steps and no collective waits on a rank that ran dry.
    """
    shards = manifest.splits["train"].shards
    counts = [s.count for s in shards]
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


def train_dataset(data_dir, manifest: Manifest, conditions: list[str], batch_size: int, rank: int, size: int,
                  shuffle_buffer: int, seed: int, start_epoch: int, epochs: int,
                  cache: bool = False, input_threads: int = 0) -> tuple[tf.data.Dataset, int]:
    """This rank's batches for epochs start_epoch..epochs-1, and the steps per epoch.

    Each epoch is shuffled with its own seed (seed, rank, epoch), so a run resumed at epoch k sees
    exactly the batches an uninterrupted run would have seen from epoch k on.
    """
    mode, file_idx, steps = rank_plan(manifest, rank, size, batch_size)
    paths = shard_paths(data_dir, manifest, "train")
    records = _serialized([paths[i] for i in file_idx], manifest)
    if mode == "elements":
        records = records.shard(size, rank)
    records = records.map(_parser(manifest, conditions), num_parallel_calls=input_threads or AUTOTUNE,
                          deterministic=True)
    if cache:
        records = records.cache()
    per_epoch = steps * batch_size

    def epoch(e):
        return records.shuffle(shuffle_buffer, seed=tf.cast(seed, tf.int64) * 1_000_003 + rank * 10_007 + e,
                               reshuffle_each_iteration=False).take(per_epoch)

    ds = tf.data.Dataset.range(start_epoch, max(epochs, start_epoch + 1)).flat_map(epoch)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(2 if input_threads else AUTOTUNE)
    if input_threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = input_threads
        # A fixed thread budget leaves autotune nothing to tune, and its optimization thread held up the
        # iterator's teardown at the end of fit by 25-50 s on CPU ranks (seen with py-spy in the demo).
        options.autotune.enabled = False
        ds = ds.with_options(options)
    return ds, steps


def eval_dataset(data_dir, manifest: Manifest, split: str, conditions: list[str], batch_size: int) -> tf.data.Dataset:
    """Every record of a split, in order, in batches (the last one may be short)."""
    if manifest.splits[split].count == 0:
        raise UserError(f"the {split} split is empty; raise data.{split}_fraction or prepare more subjects")
    ds = _serialized(shard_paths(data_dir, manifest, split), manifest)
    return ds.map(_parser(manifest, conditions), num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)
