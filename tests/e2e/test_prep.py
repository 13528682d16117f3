"""Data preparation with the simulator through the CLI: manifest, subject-disjoint splits, bit-exact shards, verify."""

import numpy as np
import pytest

from conftest import SMOKE, cli
from cvae.config import load_config
from data_prep.common import UserError
from data_prep.manifest import load_manifest, shard_paths, verify
from data_prep.normalize import normalize
from data_prep.shards import read_arrays
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects


def test_manifest_describes_the_dataset(smoke_data):
    m = load_manifest(smoke_data)
    assert m.signal_length == 1024 and m.fs == 125.0 and m.normalization == "maxabs"
    total = sum(m.splits[s].count for s in ("train", "val", "test"))
    assert total + m.quarantine["total"] == 240
    assert sum(m.quarantine["by_reason"].values()) == m.quarantine["total"]
    for split in ("train", "val", "test"):
        shards = m.splits[split].shards
        assert sum(s.count for s in shards) == m.splits[split].count
        assert all(len(s.sha256) == 64 for s in shards)
    assert set(m.labels) == {"age", "sex", "height", "weight", "bmi", "hr"}
    assert not list(smoke_data.glob("*.tmp")) and not list(smoke_data.glob("*.done.json"))


def test_splits_are_subject_disjoint(smoke_data):
    import tensorflow as tf
    m = load_manifest(smoke_data)
    subjects = {}
    for split in ("train", "val", "test"):
        ids = set()
        for path in shard_paths(smoke_data, m, split):
            for rec in tf.data.TFRecordDataset(str(path)):
                ex = tf.train.Example.FromString(rec.numpy())
                ids.add(ex.features.feature["subject_id"].bytes_list.value[0].decode())
        subjects[split] = ids
    assert subjects["train"] and subjects["val"] and subjects["test"]
    assert not subjects["train"] & subjects["val"] and not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]


def test_round_trip_is_bit_exact(smoke_data):
    cfg = load_config(SMOKE)
    m = load_manifest(smoke_data)
    signals, labels = read_arrays(shard_paths(smoke_data, m, "test"), list(m.labels), 1024, "none")
    rows = segment_table(simulate_subjects(cfg.simulate, cfg.data.seed), cfg.simulate.segments_per_subject)
    expected = normalize(simulate_signals(rows, cfg.simulate, cfg.data, cfg.data.seed), "maxabs")
    for sig, lab in zip(signals, labels):
        match = np.flatnonzero(np.isclose(rows["age"].to_numpy(np.float32), lab[0], rtol=0, atol=0))
        assert any(np.array_equal(sig, expected[i]) for i in match)


def test_verify_passes_then_catches_a_corrupted_shard(smoke_data, tmp_path):
    import shutil
    copy = tmp_path / "data"
    shutil.copytree(smoke_data, copy)
    assert verify(copy)["records"] == sum(load_manifest(copy).splits[s].count for s in ("train", "val", "test"))
    shard = sorted(copy.glob("train-*.tfrecord"))[0]
    blob = bytearray(shard.read_bytes())
    blob[100] ^= 0xFF
    shard.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="sha256 mismatch"):
        verify(copy)
    result = cli("prep", "--config", str(SMOKE), "--out", str(copy), "--verify")
    assert result.returncode == 2 and "sha256 mismatch" in result.stderr


def test_simulator_is_deterministic_and_ages(tmp_path):
    cfg = load_config(SMOKE, ["simulate.n_subjects=400", "simulate.segments_per_subject=1",
                              "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, 7), 1)
    a = simulate_signals(rows, cfg.simulate, cfg.data, 7)
    b = simulate_signals(rows.iloc[::-1], cfg.simulate, cfg.data, 7)[::-1]
    assert np.array_equal(a, b)   # per-row seeding: order and batching do not matter
    assert np.isfinite(a).all()
    # The age effect is in the waveforms, not only in the hidden parameters: a regressor fit on the spectra of half
    # the subjects predicts the age of the other half.
    from cvae.evaluate.features import spectral_features
    from cvae.evaluate.metrics import age_regressor, spearman
    x, age = spectral_features(a), rows["age"].to_numpy()
    model = age_regressor(x[::2], age[::2])
    assert spearman(age[1::2], model.predict(x[1::2])) > 0.6


def test_a_single_subject_source_says_which_splits_are_empty_and_how_to_fix_it(tmp_path):
    result = cli("prep", "--config", str(SMOKE), "--out", str(tmp_path / "one"), "simulate.n_subjects=1")
    assert result.returncode == 0, result.stderr[-2000:]
    warning = [line for line in result.stderr.splitlines() if "WARNING prep:" in line]
    assert len(warning) == 1
    assert "the val and test splits" in warning[0] and "are empty (1 subject with kept windows)" in warning[0]
    assert "add subjects or change data.val_fraction/data.test_fraction" in warning[0]
    many = cli("prep", "--config", str(SMOKE), "--out", str(tmp_path / "many"))
    assert many.returncode == 0 and "WARNING prep:" not in many.stderr
