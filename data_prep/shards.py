"""Reading TFRecord shards (written by data_prep.records): the parser tf.data uses, and whole shards into numpy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from data_prep.readers.arrays import kept


def parse_fn(label_columns: list[str], signal_length: int, with_ids: bool = False):
    """A function mapping a serialized Example to (signal float32 [L], labels float32 [len(labels)]), plus its
    subject_id when `with_ids`."""
    spec = {"signal": tf.io.FixedLenFeature([], tf.string)}
    spec.update({name: tf.io.FixedLenFeature([], tf.float32) for name in label_columns})
    if with_ids:
        spec["subject_id"] = tf.io.FixedLenFeature([], tf.string)

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, spec)
        signal = tf.reshape(tf.io.decode_raw(ex["signal"], tf.float32, little_endian=True), [signal_length])
        labels = tf.stack([ex[name] for name in label_columns]) if label_columns else tf.zeros([0])
        return (signal, labels, ex["subject_id"]) if with_ids else (signal, labels)

    return parse


def read_arrays(files: list[str | Path], label_columns: list[str], signal_length: int, compression: str,
                with_ids: bool = False, keep: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Read whole shards into numpy (evaluation, tests) in one pass: signals [N, L], labels [N, len(labels)], and
    the subject ids [N] when `with_ids`. `keep` (sorted record indices over the files in order) keeps only those
    records: a sample of a large split in bounded memory."""
    ds = tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP" if compression == "gzip" else "")
    parts, at = [], 0
    for batch in ds.map(parse_fn(label_columns, signal_length, with_ids)).batch(4096).as_numpy_iterator():
        n = len(batch[0])
        if keep is not None:
            batch = tuple(b[kept(keep, at, n)] for b in batch)
        parts.append(batch)
        at += n
    parts = list(zip(*parts))
    if not parts:
        empty = (np.zeros((0, signal_length), np.float32), np.zeros((0, len(label_columns)), np.float32))
        return empty + (np.zeros(0, dtype=str),) if with_ids else empty
    out = tuple(np.concatenate(p) for p in parts)
    return out[:2] + (np.array([s.decode("utf-8") for s in out[2]], dtype=str),) if with_ids else out
