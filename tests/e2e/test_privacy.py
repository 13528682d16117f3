"""Private training under Horovod: noise once per global step, distinct subjects per batch, no training data
read after training."""
import json

import numpy as np
import pytest


@pytest.mark.parametrize("ranks", [1, 2])
def test_the_noise_is_added_once_per_global_step_whatever_the_ranks(ranks, tmp_path):
    """Clipping at 1e-6 leaves the DP-SGD gradient of a global batch of 8 all noise: each coordinate's variance must
    be (noise_multiplier x clip_norm / 8)^2 on 1 rank and on 2 (each adding its share), and the ranks agree."""
    import os
    import re
    import subprocess
    import sys

    from conftest import REPO
    from launch.horovod import horovodrun_path
    out = tmp_path / "g.npy"
    result = subprocess.run([horovodrun_path(), "-np", str(ranks), "-H", f"localhost:{ranks}", "--gloo",
                             sys.executable, str(REPO / "tests" / "data" / "dp_noise.py"), str(out), "8", "1000",
                             "1e-6"], cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    digests = re.findall(r"digest (\w+)", result.stdout)
    assert len(digests) == ranks and len(set(digests)) == 1                     # every rank applies the same
    g = np.load(out)
    expected = (1000 * 1e-6 / 8) ** 2
    assert g.size > 50_000 and g.var() / expected == pytest.approx(1.0, abs=0.03)   # 5 standard errors
    assert abs(g.mean()) < 5 * np.sqrt(expected / g.size)


def test_private_batches_hold_distinct_subjects_one_window_each_per_epoch(smoke_data):
    """The subject is the privacy unit: within an epoch no subject gives two windows, and which window it gives
    changes between epochs."""
    from cvae.training.input_pipeline import train_dataset
    from data_prep.manifest import load_manifest, shard_paths
    from data_prep.shards import read_arrays
    manifest = load_manifest(smoke_data)
    x, _, ids = read_arrays(shard_paths(smoke_data, manifest, "train"), [], manifest.signal_length,
                            manifest.compression, with_ids=True)
    subject_of = {row.tobytes(): sid for row, sid in zip(x, ids)}
    ds, steps = train_dataset(smoke_data, manifest, ["age"], 4, 0, 1, 64, seed=1, start_epoch=0, epochs=2,
                              cache=True, per_subject=True)
    assert steps == len(set(ids)) // 4
    epochs = [[], []]
    for i, (signal, _) in enumerate(ds.as_numpy_iterator()):
        epochs[i // steps].extend(signal)
    for windows in epochs:
        subjects = [subject_of[w.tobytes()] for w in windows]
        assert len(subjects) == steps * 4 and len(set(subjects)) == len(subjects)
    assert {w.tobytes() for w in epochs[0]} != {w.tobytes() for w in epochs[1]}


def test_a_private_run_reads_no_training_data_after_training_and_states_its_epsilon(smoke_data, tmp_path):
    """2 ranks of DP-SGD to a target epsilon with the training label table gone (nothing may need it): the model
    directory has no latent prior, equalizer or label summary, its condition scaling comes from the labels'
    plausible ranges, its noise keeps the target (and its epochs cannot change on resume), its epsilon is the
    accountant's for the steps it ran, TensorBoard has it, and generate and evaluate carry it."""
    import shutil

    from conftest import SMOKE, cli, horovodrun
    from cvae.evaluate.report import evaluate
    from cvae.generation.generate import generate
    from cvae.training.privacy import epsilon, noise_for_epsilon
    from data_prep.common import UserError
    from data_prep.manifest import load_manifest
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(smoke_data, data)
    (data / "labels-train.csv.gz").unlink()
    result = horovodrun(2, "train", "--config", str(SMOKE), "--data", str(data), "--run-dir", str(run),
                        "train.privacy.enabled=true", "train.privacy.target_epsilon=20",
                        "train.privacy.delta=0.001", "train.global_batch_size=8", "train.epochs=2")
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((run / "model" / "meta.json").read_text())
    subjects = load_manifest(data).splits["train"].subjects
    steps = json.loads((run / "ranks" / "rank-000.json").read_text())["steps_per_epoch"]
    assert steps == min(s.subjects for s in load_manifest(data).splits["train"].shards) // 4
    p = meta["privacy"]
    assert p["steps"] == 2 * steps and p["sample_rate"] == pytest.approx(8 / subjects)
    # the noise keeps the target over the 2 epochs of one rank's steps (at least as many as 2 ranks make)
    assert p["noise_multiplier"] == pytest.approx(noise_for_epsilon(20, 8 / subjects, 2 * (subjects // 8), 0.001),
                                                  rel=1e-6)
    assert p["epsilon"] == pytest.approx(epsilon(p["noise_multiplier"], 8 / subjects, 2 * steps, 0.001), rel=1e-6)
    assert 0 < p["epsilon"] <= 20
    # more epochs would need other noise: the run cannot be continued with them
    more = cli("train", "--config", str(SMOKE), "--data", str(data), "--run-dir", str(run), "--resume",
               "train.privacy.enabled=true", "train.privacy.target_epsilon=20", "train.privacy.delta=0.001",
               "train.global_batch_size=8", "train.epochs=3")
    assert more.returncode == 2 and "was trained with train.epochs=2, this run has train.epochs=3" in more.stderr
    assert meta["equalizer"] is None and meta["latent_prior"] == "standard normal"
    assert sorted(f.name for f in (run / "model").iterdir()) == ["decoder.keras", "encoder.keras", "meta.json"]
    assert meta["label_stats"]["age"] == {"mean": 60.0, "std": pytest.approx(120 / np.sqrt(12)), "min": 0.0,
                                          "max": 120.0}
    assert "privacy/epsilon" in _scalar_tags(run / "tensorboard")
    generate(run, np.array([30.0, 60.0]), 10, tmp_path / "s.npz", seed=0)
    with np.load(tmp_path / "s.npz") as g:
        assert list(g["label_names"]) == ["age"] and json.loads(str(g["request"]))["privacy"] == p
    evaluate(tmp_path / "s.npz", data, tmp_path / "report", seed=0)
    assert f"epsilon {p['epsilon']:.2f} at delta 0.001" in (tmp_path / "report" / "report.md").read_text()
    with pytest.raises(UserError, match="does not combine with model.likelihood=calibrated"):
        from cvae.config import load_config
        load_config(SMOKE, ["train.privacy.enabled=true", "model.likelihood=calibrated"])


def _scalar_tags(directory) -> set:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = set()
    for events in directory.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"]) | set(acc.Tags()["tensors"])
    return tags
