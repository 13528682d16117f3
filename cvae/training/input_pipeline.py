"""tf.data input pipelines from the shards: rank-sharded training stream with exact steps, full validation."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from cvae.model.conditions import Conditions
from cvae.training.augment import augment
from data_prep.common import UserError
from data_prep.manifest import Manifest, shard_paths
from data_prep.shards import parse_fn

AUTOTUNE = tf.data.AUTOTUNE
SHUFFLE_GRAPH_SEED = 0x5EED   # graph-level half of the streamed pipeline's shuffle seed (the op seed varies)
log = logging.getLogger(__name__)


def _serialized(files: list[Path], manifest: Manifest) -> tf.data.Dataset:
    """The raw records of the given shard files, interleaved in a fixed order."""
    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    return ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=manifest.tf_compression),
                         cycle_length=min(4, max(len(files), 1)), num_parallel_calls=AUTOTUNE, deterministic=True)


def _parser(manifest: Manifest, conditions: list[str], with_ids: bool = False):
    """serialized Example -> (signal, the model's condition vector: cvae.model.conditions[, subject id])."""
    encoding = Conditions.from_manifest(manifest, conditions)
    parse = parse_fn(conditions, manifest.signal_length, with_ids)

    def fn(serialized):
        signal, labels, *subject = parse(serialized)
        return (signal, encoding.encode_tf(labels[None])[0], *subject)

    return fn


def _deal(manifest: Manifest, size: int) -> tuple[str, list[int]]:
    """How the train split is dealt to `size` ranks ("files" or "elements") and how many records each gets."""
    counts = [s.count for s in manifest.splits["train"].shards]
    if len(counts) >= size:
        return "files", [sum(counts[r::size]) for r in range(size)]
    total = sum(counts)
    return "elements", [total // size + (1 if r < total % size else 0) for r in range(size)]


def rank_rows(manifest: Manifest, rank: int, size: int) -> int:
    """How many training records this rank reads."""
    return _deal(manifest, size)[1][rank]


def rank_plan(manifest: Manifest, rank: int, size: int, batch_size: int,
              per_subject: bool = False) -> tuple[str, list[int], int]:
    """How this rank reads the train split and the common steps per epoch.

    Files are dealt to ranks when there are at least as many shards as ranks, else every rank reads
    every file and keeps one element in `size`. Steps = the smallest rank's full batches, so every
    rank runs exactly the same number of steps and no collective waits on a rank that ran dry. With
    `per_subject` (private training: an epoch is one window per subject) a batch is of distinct subjects, each
    rank's subjects are those of its whole shards, and steps count the smallest rank's subjects.
    """
    mode, per_rank = _deal(manifest, size)
    shards = manifest.splits["train"].shards
    files = list(range(rank, len(shards), size)) if mode == "files" else list(range(len(shards)))
    if per_subject:
        if mode != "files" or any(s.count and not s.subjects for s in shards):
            raise UserError("train.privacy needs each subject's windows on one rank and the subjects of each shard "
                            f"in the manifest: at least as many train shards as ranks (data.train_shards, now "
                            f"{len(shards)} for {size} ranks), prepared by this version of ppg-cvae prep")
        per_rank = [sum(s.subjects for s in shards[r::size]) for r in range(size)]
    steps = min(per_rank) // batch_size
    if steps < 1:
        raise UserError(f"the train split gives a rank only {min(per_rank)} {'subjects' if per_subject else 'signals'}"
                        f", fewer than one batch of {batch_size}; lower train.batch_size, use fewer ranks or prepare "
                        "more data")
    return mode, files, steps


def capped_rows(data_dir, manifest: Manifest, rank: int, size: int, cap: int) -> int:
    """How many of this rank's training records remain when each subject keeps at most `cap` (the rank reads whole
    shards: each subject's windows are on one rank, so the bound is per subject, not per rank's share)."""
    mode, files, _ = rank_plan(manifest, rank, size, 1)
    if mode != "files":
        raise UserError(f"train.max_windows_per_subject needs each subject's windows on one rank: at least as many "
                        f"train shards as ranks (data.train_shards, now {len(manifest.splits['train'].shards)} for "
                        f"{size} ranks)")
    paths = shard_paths(data_dir, manifest, "train")
    spec = {"subject_id": tf.io.FixedLenFeature([], tf.string)}
    ids = _serialized([paths[i] for i in files], manifest).map(
        lambda r: tf.io.parse_single_example(r, spec)["subject_id"], num_parallel_calls=AUTOTUNE)
    counts = np.unique(np.concatenate(list(ids.batch(65536).as_numpy_iterator())), return_counts=True)[1]
    return int(np.minimum(counts, cap).sum())


def cache_fits(rows: int, length: int, n_cond: int, local_ranks: int) -> tuple[bool, int]:
    """Whether `rows` decoded records fit in memory: at most half of the host's available memory, shared by
    its local ranks. Returns (fits, bytes needed)."""
    need = rows * (length + n_cond) * 4
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return need <= available // (2 * max(local_ranks, 1)), need


def _in_memory(records: tf.data.Dataset, rows: int, length: int, n_cond: int) -> tuple[tf.Variable, tf.Variable,
                                                                                     np.ndarray]:
    """Decode every record once into two CPU variables (signals [rows, L], conditions [rows, C]); also each
    record's subject as a code 0..subjects-1."""
    signals = np.empty((rows, length), np.float32)
    conds = np.empty((rows, n_cond), np.float32)
    ids = np.empty(rows, object)
    at = 0
    for x, c, i in records.batch(4096).as_numpy_iterator():
        signals[at:at + len(x)], conds[at:at + len(x)], ids[at:at + len(x)] = x, c, i
        at += len(x)
    if at != rows:
        raise UserError(f"the train shards hold {at} records for this rank where the manifest counts {rows}; "
                        f"re-run prep or check the data with `train.verify_data=sha256`")
    with tf.device("/cpu:0"):   # variables are captured by reference: no 2 GB graph constant
        return (tf.Variable(signals, trainable=False), tf.Variable(conds, trainable=False),
                np.unique(ids, return_inverse=True)[1].astype(np.int32))


def _one_per_subject(key: tf.Tensor, subject: tf.Tensor, subjects: int) -> tf.Tensor:
    """For each subject 0..subjects-1, the index of its record with the largest key (the lowest index on a tie)."""
    best = tf.math.unsorted_segment_max(key, subject, subjects)
    index = tf.range(tf.shape(key)[0])
    candidate = tf.where(tf.equal(key, tf.gather(best, subject)), index, tf.shape(key)[0])
    return tf.math.unsorted_segment_min(candidate, subject, subjects)


def _capped(key: tf.Tensor, subject: tf.Tensor, subjects: int, cap: int) -> tf.Tensor:
    """The indices of each subject's `cap` records with the smallest keys (all of a subject with fewer)."""
    by_key = tf.argsort(key)
    grouped = tf.gather(by_key, tf.argsort(tf.gather(subject, by_key), stable=True))   # by subject, then key
    owner = tf.gather(subject, grouped)
    position = tf.range(tf.shape(key)[0])
    first = tf.gather(tf.math.unsorted_segment_min(position, owner, subjects), owner)
    return tf.boolean_mask(grouped, position - first < cap)


def train_dataset(data_dir, manifest: Manifest, conditions: list[str], batch_size: int, rank: int, size: int,
                  shuffle_buffer: int, seed: int, start_epoch: int, epochs: int,
                  cache: bool = False, input_threads: int = 0, local_ranks: int = 1,
                  condition_noise: float = 0.0, per_subject: bool = False, subject_cap: int = 0,
                  steps: int = 0, augmentation: dict | None = None) -> tuple[tf.data.Dataset, int]:
    """This rank's batches for epochs start_epoch..epochs-1, and the steps per epoch.

    With `cache` and when it fits (`cache_fits`), the rank's records are decoded once into memory and each
    epoch gathers batches along a full permutation; otherwise they stream from the shards through a shuffle
    buffer. Either way each epoch's order is a function of (seed, rank, epoch), so a run resumed at epoch k
    sees exactly the batches an uninterrupted run would have seen from epoch k on. `condition_noise` (train.
    condition_noise) adds N(0, noise^2) to the numeric conditions (standardized units), drawn from (seed, rank,
    epoch, step) as well, and so are the `augmentation`s of the windows (cvae.training.augment, its keyword
    arguments; None: none). With `per_subject` (private training) each epoch takes one window of each subject, at
    random, in batches of distinct subjects (rank_plan); the records must be in memory. With `subject_cap` each
    epoch takes at most that many windows of each subject, at random, and `steps` per epoch (the ranks' common
    count after the cap: capped_rows); the records must be in memory.
    """
    augmentation = {k: v for k, v in (augmentation or {}).items() if v}
    mode, file_idx, planned = rank_plan(manifest, rank, size, batch_size, per_subject)
    steps = steps or planned
    rows = rank_rows(manifest, rank, size)
    encoding = Conditions.from_manifest(manifest, conditions)
    length, n_cond = manifest.signal_length, encoding.width
    fits, need = cache_fits(rows, length, n_cond, local_ranks)
    for key, on in (("train.privacy", per_subject), ("train.max_windows_per_subject", subject_cap)):
        if on and not (cache and fits):
            raise UserError(f"{key} needs each rank's training windows in memory: train.cache, with room for "
                            f"{need >> 20} MiB per rank (half the available memory per local rank)")
    if cache and not fits:
        log.warning("train.cache: this rank's %d training signals need %d MiB, more than half the available "
                    "memory per local rank; streaming them from the shards", rows, need >> 20)
    paths = shard_paths(data_dir, manifest, "train")
    records = _serialized([paths[i] for i in file_idx], manifest)
    if mode == "elements":
        records = records.shard(size, rank)
    records = records.map(_parser(manifest, conditions, with_ids=cache and fits),
                          num_parallel_calls=input_threads or AUTOTUNE, deterministic=True)

    def epoch_seed(e):
        return tf.cast(seed, tf.int64) * 1_000_003 + rank * 10_007 + e

    if cache and fits:
        log.info("train.cache: %d training signals held in memory (%d MiB)", rows, need >> 20)
        epoch = _cached_epochs(records, (rows, length, n_cond), sum(manifest.splits["train"].shards[i].subjects
                                                                     for i in file_idx),
                               (steps, batch_size), epoch_seed, per_subject, input_threads, subject_cap)
    else:
        epoch = _streamed_epochs(records, shuffle_buffer, (steps, batch_size), epoch_seed)

    jittered = _jittered(epoch, epoch_seed, condition_noise * encoding.numeric_mask(), augmentation)
    return _delivered(tf.data.Dataset.range(start_epoch, max(epochs, start_epoch + 1)).flat_map(jittered),
                      input_threads), steps


def _jittered(epoch, epoch_seed, noise, augmentation: dict):
    """epoch(e) with the windows augmented and `noise` (per condition column) times N(0, 1) added to the
    conditions, both drawn from (epoch seed, step); epoch itself when there is neither."""
    if not (noise.any() or augmentation):
        return epoch
    noise = tf.constant(noise)

    def jittered(e):
        return epoch(e).enumerate().map(lambda i, b: (
            augment(b[0], tf.stack([epoch_seed(e), i + 1]), **augmentation),
            b[1] + noise * tf.random.stateless_normal(tf.shape(b[1]), seed=tf.stack([epoch_seed(e), i + 1]))))
    return jittered


def _cached_epochs(records: tf.data.Dataset, shape: tuple, counted: int, batches: tuple, epoch_seed,
                   per_subject: bool, input_threads: int, subject_cap: int = 0):
    """epoch(e) over the rank's records decoded once into memory (`shape`: rows, length, condition width): a full
    permutation of them, or with `per_subject` one window of each subject (`counted` by the manifest) in batches
    of distinct subjects, or with `subject_cap` a permutation of at most that many windows of each subject;
    `batches` (steps, batch size) batch by batch."""
    (rows, length, n_cond), (steps, batch_size) = shape, batches
    signals, conds, subject = _in_memory(records, rows, length, n_cond)
    subjects = int(subject.max()) + 1
    if per_subject and subjects != counted:
        raise UserError(f"this rank's train shards hold {subjects} subjects where the manifest counts {counted}; "
                        "re-run prep")
    per_epoch = steps * batch_size

    def epoch(e):
        key = tf.random.stateless_uniform([rows], seed=tf.stack([epoch_seed(e), tf.constant(0, tf.int64)]))
        if per_subject:
            order = _one_per_subject(key, tf.constant(subject), subjects)
            order = tf.gather(order, tf.argsort(tf.random.stateless_uniform(
                [subjects], seed=tf.stack([epoch_seed(e), tf.constant(1, tf.int64)]))))
        elif subject_cap:
            order = _capped(key, tf.constant(subject), subjects, subject_cap)
            order = tf.gather(order, tf.argsort(tf.random.stateless_uniform(
                tf.shape(order), seed=tf.stack([epoch_seed(e), tf.constant(1, tf.int64)]))))
        else:
            order = tf.argsort(key)
        order = tf.reshape(order[:per_epoch], [steps, batch_size])
        return tf.data.Dataset.from_tensor_slices(order).map(
            lambda idx: (tf.gather(signals, idx), tf.gather(conds, idx)),
            num_parallel_calls=input_threads or AUTOTUNE, deterministic=True)
    return epoch


def _streamed_epochs(records: tf.data.Dataset, shuffle_buffer: int, batches: tuple, epoch_seed):
    """epoch(e) streaming the records through a shuffle buffer, `batches` (steps, batch size) whole batches: no batch
    spans two epochs."""
    steps, batch_size = batches

    def epoch(e):
        # the op seed is a tensor; with the function graph's seed pinned TensorFlow never compares it with the
        # global one (which fails when that is 0: train.seed=0 on rank 0), and the order ignores global state
        tf.compat.v1.get_default_graph().seed = SHUFFLE_GRAPH_SEED
        return records.shuffle(shuffle_buffer, seed=epoch_seed(e), reshuffle_each_iteration=False) \
            .take(steps * batch_size).batch(batch_size, drop_remainder=True)
    return epoch


def _delivered(ds: tf.data.Dataset, input_threads: int) -> tf.data.Dataset:
    """Prefetched, within the input thread budget, and copied ahead to the rank's GPU when it has one."""
    ds = ds.prefetch(2 if input_threads else AUTOTUNE)
    if input_threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = input_threads
        # A fixed thread budget leaves autotune nothing to tune, and its optimization thread held up the
        # iterator's teardown at the end of fit by 25-50 s on CPU ranks (seen with py-spy in the demo).
        options.autotune.enabled = False
        ds = ds.with_options(options)
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:   # copy the next batches to the rank's GPU while it computes this one
        ds = ds.apply(tf.data.experimental.prefetch_to_device(gpus[0].name, buffer_size=2))
    return ds


def eval_dataset(data_dir, manifest: Manifest, split: str, conditions: list[str], batch_size: int,
                 with_ids: bool = False) -> tf.data.Dataset:
    """Every record of a split, in order, in batches (the last one may be short); with its subject ids when
    `with_ids`."""
    if manifest.splits[split].count == 0:
        raise UserError(f"the {split} split is empty; raise data.{split}_fraction or prepare more subjects")
    ds = _serialized(shard_paths(data_dir, manifest, split), manifest)
    return ds.map(_parser(manifest, conditions, with_ids), num_parallel_calls=AUTOTUNE).batch(batch_size) \
        .prefetch(AUTOTUNE)
