"""Shards written without TensorFlow read back through TensorFlow's own Example parser and TFRecord reader."""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data_prep.records import ExampleEncoder, ShardWriter
from data_prep.shards import read_arrays


def rows(n, labels, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" if i % 3 else f"subject-ü-{'x' * (130 * (i % 2))}{i}" for i in range(n)]   # 1- and 2-byte lengths
    table = pd.DataFrame({name: rng.uniform(18, 98, n) for name in labels} | {"subject_id": ids})
    return rng.standard_normal((n, 1024)).astype(np.float32), table


@pytest.mark.parametrize("labels", [["age"], ["age", "sex", "height"], []])
def test_an_encoded_record_is_the_example_tensorflow_would_write(labels):
    signals, table = rows(5, labels)
    records = ExampleEncoder(1024, labels).encode(signals, table[labels].to_numpy(), table["subject_id"])
    for i, rec in enumerate(records):
        ex = tf.train.Example.FromString(rec)
        f = ex.features.feature
        assert set(f) == {"signal", "subject_id", *labels}
        np.testing.assert_array_equal(np.frombuffer(f["signal"].bytes_list.value[0], "<f4"), signals[i])
        assert f["subject_id"].bytes_list.value[0].decode() == table["subject_id"][i]
        for name in labels:
            assert list(f[name].float_list.value) == [np.float32(table[name][i])]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_written_shard_reads_back_whole_with_its_checksum(tmp_path, compression):
    signals, table = rows(300, ["age", "sex"])
    path = tmp_path / ("train.tfrecord" + (".gz" if compression == "gzip" else ""))
    writer = ShardWriter(path, compression, 1024, ["age", "sex"])
    writer.write(signals[:200], table[:200])
    writer.write(signals[200:], table[200:])
    entry = writer.close()
    assert entry["count"] == 300 and entry["bytes"] == path.stat().st_size
    import hashlib
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    x, y, ids = read_arrays([path], ["age", "sex"], 1024, compression, with_ids=True)
    np.testing.assert_array_equal(x, signals)
    np.testing.assert_array_equal(y, table[["age", "sex"]].to_numpy(np.float32))
    assert list(ids) == list(table["subject_id"])
    assert list(tmp_path.iterdir()) == [path]          # no temporary file left


def test_a_damaged_record_fails_its_checksum_in_tensorflows_reader(tmp_path):
    signals, table = rows(10, ["age"])
    path = tmp_path / "train.tfrecord"
    writer = ShardWriter(path, "none", 1024, ["age"])
    writer.write(signals, table)
    writer.close()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        read_arrays([path], ["age"], 1024, "none")


def test_an_aborted_shard_leaves_nothing(tmp_path):
    signals, table = rows(4, ["age"])
    writer = ShardWriter(tmp_path / "train.tfrecord", "none", 1024, ["age"])
    writer.write(signals, table)
    writer.abort()
    assert list(tmp_path.iterdir()) == []
