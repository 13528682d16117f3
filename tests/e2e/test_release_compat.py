"""Artifacts written by release 0.1.0 (TensorFlow 2.15.1, Keras 2.15, numpy 1.26; tests/data/release-0.1.0, made by
tests/data/make_release_run.py) work on this stack: its dataset verifies and trains, its exported model generates the
signals it generated there, its checkpoint resumes."""
import json
import shutil

import numpy as np
import pytest

from conftest import REPO, SMOKE, cli

RELEASE = REPO / "tests" / "data" / "release-0.1.0"


@pytest.fixture
def release(tmp_path):
    """A writable copy (training and generation write beside their inputs)."""
    shutil.copytree(RELEASE, tmp_path / "release")
    return tmp_path / "release"


def test_its_dataset_loads_and_verifies(release):
    from data_prep.manifest import load_manifest
    manifest = load_manifest(release / "data")
    assert manifest.signal_length == 1024 and manifest.splits["train"].count == 38
    result = cli("prep", "--config", str(SMOKE), "--out", str(release / "data"), "--verify",
                 "simulate.n_subjects=24", "simulate.segments_per_subject=2", "data.train_shards=1")
    assert result.returncode == 0, result.stderr[-3000:]


def test_its_model_generates_the_signals_it_generated_on_tensorflow_2_15(release):
    before = np.load(RELEASE / "generated.npz")
    result = cli("generate", "--model", str(release / "run"), "--ages", "30,60", "--n-per-age", "4", "--seed", "0",
                 "--out", str(release / "again.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    again = np.load(release / "again.npz")
    assert str(again["model_id"]) == str(before["model_id"])
    np.testing.assert_array_equal(again["labels"], before["labels"])
    np.testing.assert_allclose(again["signals"], before["signals"], atol=1e-5)


def test_its_checkpoint_resumes(release):
    run = release / "run"
    result = cli("train", "--config", str(run / "config.yaml"), "--data", str(release / "data"), "--run-dir", str(run),
                 "--resume", "train.epochs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stderr and "at epoch 2" in result.stderr
    report = json.loads((run / "ranks" / "rank-000.json").read_text())
    assert report["epochs_run"] == 1 and report["stop_epoch"] == 3
