"""Data preparation in-process: rerun, too many bad rows, gzip shards."""
import json

import numpy as np
import pytest

from conftest import SMOKE
from cvae.config import load_config
from data_prep.common import UserError
from data_prep.manifest import shard_paths, verify
from data_prep.prep import prepare
from data_prep.shards import read_arrays
from data_prep.sources import SimulatorSource


def test_rerun_is_a_no_op_and_another_dataset_is_refused(tmp_path):
    cfg = load_config(SMOKE, ["simulate.n_subjects=20"])
    out = tmp_path / "d"
    first = prepare(cfg, out, SimulatorSource(cfg.simulate, cfg.data))
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert prepare(cfg, out, SimulatorSource(cfg.simulate, cfg.data)) == first
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    other = load_config(SMOKE, ["simulate.n_subjects=21"])
    with pytest.raises(UserError, match="already holds a different dataset"):
        prepare(other, out, SimulatorSource(other.simulate, other.data))
    assert json.loads((out / "manifest.json").read_text()) == first.to_dict()   # untouched
    second = prepare(other, out, SimulatorSource(other.simulate, other.data), overwrite=True)
    assert second.dataset_id != first.dataset_id


def test_too_many_bad_rows_stop_the_run(tmp_path):
    cfg = load_config(SMOKE, ["simulate.n_subjects=20", "simulate.artifact_rate=1.0", "data.max_bad_fraction=0.1"])
    with pytest.raises(UserError, match="failed validation"):
        prepare(cfg, tmp_path / "d", SimulatorSource(cfg.simulate, cfg.data))
    assert not (tmp_path / "d" / "manifest.json").exists()


def test_gzip_shards_round_trip_and_verify(tmp_path):
    cfg = load_config(SMOKE, ["simulate.n_subjects=20", "data.compression=gzip"])
    m = prepare(cfg, tmp_path / "gz", SimulatorSource(cfg.simulate, cfg.data))
    files = shard_paths(tmp_path / "gz", m, "train")
    assert all(f.name.endswith(".tfrecord.gz") for f in files)
    signals, _ = read_arrays(files, ["age"], 1024, "gzip")
    assert len(signals) == m.splits["train"].count and np.abs(signals).max() == pytest.approx(1.0)
    assert verify(tmp_path / "gz")["records"] == sum(m.splits[s].count for s in ("train", "val", "test"))
