"""Writing TFRecord shards without TensorFlow: every record has one layout (the signal as raw float32 bytes, one
float per label, the subject id), so the tf.train.Example wire bytes are assembled from fixed pieces, and the
TFRecord framing (lengths with masked CRC32C checksums) is written directly. TensorFlow's parser reads them as
any other Example (tests/unit/test_records.py checks that against tf.train.Example)."""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import google_crc32c
import numpy as np
import pandas as pd

from data_prep.common import temp_beside


def shard_name(split: str, index: int, count: int, compression: str) -> str:
    """`train-00003-of-00064.tfrecord[.gz]`."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord" + (".gz" if compression == "gzip" else "")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2) with a one-byte tag."""
    return bytes([tag]) + _varint(len(payload)) + payload


def _entry(name: str, feature: bytes) -> bytes:
    """One entry of Features.feature (map<string, Feature>): key = 1, value = 2."""
    return _field(0x0A, _field(0x0A, name.encode()) + _field(0x12, feature))


class ExampleEncoder:
    """Serialized tf.train.Example records: `signal` (BytesList of the float32 samples, little-endian), one
    FloatList of one value per label, `subject_id` (BytesList)."""

    def __init__(self, signal_length: int, label_columns: list[str]):
        marker = b"\x00" * (4 * signal_length)   # each variable part is cut out where its marker sits
        self.signal_head = _entry("signal", _field(0x0A, _field(0x0A, marker)))[:-len(marker)]
        self.label_heads = [_entry(name, _field(0x12, _field(0x0A, b"\x00" * 4)))[:-4] for name in label_columns]
        self.label_columns = label_columns

    def encode(self, signals: np.ndarray, labels: np.ndarray, subject_ids) -> list[bytes]:
        """Records for signals [n, L] (any float dtype), labels [n, len(label_columns)] and n subject ids."""
        sig = np.ascontiguousarray(signals, dtype="<f4")
        lab = np.ascontiguousarray(labels, dtype="<f4")
        id_entries = {sid: _entry("subject_id", _field(0x0A, _field(0x0A, sid.encode()))) for sid in set(subject_ids)}
        fixed = len(self.signal_head) + 4 * sig.shape[1] + sum(len(h) + 4 for h in self.label_heads)
        heads: dict[int, bytes] = {}
        out = []
        for i, sid in enumerate(subject_ids):
            values, id_entry = lab[i].tobytes(), id_entries[sid]
            n = fixed + len(id_entry)
            head = heads.get(n) or heads.setdefault(n, b"\x0a" + _varint(n))   # Example.features, length n
            out.append(b"".join([head, self.signal_head, sig[i].tobytes(),
                                 *(h + values[4 * j:4 * j + 4] for j, h in enumerate(self.label_heads)), id_entry]))
        return out


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def frame(records: list[bytes]) -> bytes:
    """TFRecord framing: uint64 length, masked CRC32C of the length, the data, masked CRC32C of the data."""
    parts = []
    for data in records:
        length = struct.pack("<Q", len(data))
        parts += [length, _masked_crc(length), data, _masked_crc(data)]
    return b"".join(parts)


class _Hashing:
    """A file wrapper that hashes what passes through it (the shard's sha256 without reading it back)."""

    def __init__(self, fh):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self):
        self.fh.flush()


class ShardWriter:
    """Writes to a temporary file beside the shard and renames it to the shard's name only on a clean close."""

    def __init__(self, path: str | Path, compression: str, signal_length: int, label_columns: list[str]):
        self.path = Path(path)
        self.tmp = temp_beside(self.path)
        self._file = open(self.tmp, "wb")
        self._hashed = _Hashing(self._file)
        # gzip: TensorFlow's TFRecord GZIP option reads a gzip stream of the framed records
        self._out = gzip.GzipFile(fileobj=self._hashed, mode="wb", mtime=0) if compression == "gzip" else self._hashed
        self.encoder = ExampleEncoder(signal_length, label_columns)
        self.count = 0

    def write(self, signals: np.ndarray, labels: pd.DataFrame) -> None:
        values = labels[self.encoder.label_columns].to_numpy(dtype=np.float64)
        ids = labels["subject_id"].astype(str).to_numpy()
        self._out.write(frame(self.encoder.encode(signals, values, ids)))
        self.count += len(signals)

    def close(self) -> dict:
        """Finish the shard; returns its manifest entry (file, count, bytes, sha256)."""
        if self._out is not self._hashed:
            self._out.close()
        self._file.close()
        os.replace(self.tmp, self.path)
        return {"file": self.path.name, "count": self.count, "bytes": self._hashed.size,
                "sha256": self._hashed.sha.hexdigest()}

    def abort(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)
