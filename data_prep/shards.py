"""TFRecord shards: the Example layout, the atomic writer, and the parser that tf.data uses to read them."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from data_prep.files import temp_beside


def shard_name(split: str, index: int, count: int, compression: str) -> str:
    """`train-00003-of-00064.tfrecord[.gz]`."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord" + (".gz" if compression == "gzip" else "")


def serialize(signal: np.ndarray, labels: dict[str, float], subject_id: str) -> bytes:
    """One tf.train.Example: raw little-endian float32 `signal`, one float feature per label, `subject_id`."""
    feature = {
        "signal": tf.train.Feature(bytes_list=tf.train.BytesList(value=[signal.astype("<f4").tobytes()])),
        "subject_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[subject_id.encode()])),
    }
    for name, value in labels.items():
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """Writes to `<name>.tmp` and renames to the final name only on a clean close."""

    def __init__(self, path: str | Path, compression: str):
        self.path = Path(path)
        self.tmp = temp_beside(self.path)
        options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
        self._writer = tf.io.TFRecordWriter(str(self.tmp), options)
        self.count = 0

    def write(self, signals: np.ndarray, labels: pd.DataFrame, label_columns: list[str]) -> None:
        ids = labels["subject_id"].astype(str).to_numpy()
        values = labels[label_columns].to_numpy(dtype=np.float64)
        for i in range(len(signals)):
            self._writer.write(serialize(signals[i], dict(zip(label_columns, values[i])), ids[i]))
        self.count += len(signals)

    def close(self) -> dict:
        """Finish the shard; returns its manifest entry (file, count, bytes, sha256)."""
        self._writer.close()
        sha = sha256_of(self.tmp)
        size = self.tmp.stat().st_size
        os.replace(self.tmp, self.path)
        return {"file": self.path.name, "count": self.count, "bytes": size, "sha256": sha}

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)


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
                with_ids: bool = False) -> tuple[np.ndarray, ...]:
    """Read whole shards into numpy (evaluation, tests) in one pass: signals [N, L], labels [N, len(labels)], and
    the subject ids [N] when `with_ids`."""
    ds = tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP" if compression == "gzip" else "")
    parts = list(zip(*ds.map(parse_fn(label_columns, signal_length, with_ids)).batch(4096).as_numpy_iterator()))
    if not parts:
        empty = (np.zeros((0, signal_length), np.float32), np.zeros((0, len(label_columns)), np.float32))
        return empty + (np.zeros(0, dtype=str),) if with_ids else empty
    out = tuple(np.concatenate(p) for p in parts)
    return out[:2] + (out[2].astype(str),) if with_ids else out
