"""Real 2-rank Horovod (Gloo, localhost) training: averaged gradients, broadcast early stop, TensorBoard."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import SMOKE, horovodrun


def rank_reports(run):
    return [json.loads(p.read_text()) for p in sorted((run / "ranks").glob("rank-*.json"))]


def test_two_ranks_end_with_identical_weights(trained_run):
    reports = rank_reports(trained_run)
    assert [r["rank"] for r in reports] == [0, 1] and all(r["size"] == 2 for r in reports)
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    assert reports[0]["steps_per_epoch"] == reports[1]["steps_per_epoch"] > 0
    assert (trained_run / "model" / "decoder.keras").is_file()
    assert (trained_run / "config.yaml").is_file() and (trained_run / "run.json").is_file()


def test_tensorboard_holds_train_and_val_scalars_and_images(trained_run):
    files = list((trained_run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1   # rank 0 alone writes TensorBoard
    acc = EventAccumulator(str(files[0]), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    for tag in ("train/loss", "train/recon", "train/kl", "val/loss", "val/recon", "val/kl",
                "opt/learning_rate", "perf/signals_per_s", "perf/epoch_time_s"):
        assert tag in tags, tag
    epochs = [e.step for e in acc.Tensors("val/loss")]
    assert epochs == [1, 2, 3]
    val = {tag: np.array([float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(f"val/{tag}")])
           for tag in ("loss", "recon", "kl")}
    assert np.isfinite(val["loss"]).all() and (val["kl"] > 0).all()
    # trained with beta 1/3, 2/3, 1: validated with the configured beta 1 in every epoch, so epochs compare
    np.testing.assert_allclose(val["loss"], val["recon"] + val["kl"], rtol=1e-5)
    for tag, traces in (("reconstructions", 8), ("generated_by_age", 4)):
        png = tf.make_ndarray(acc.Tensors(tag)[-1].tensor_proto)[2]   # [width, height, png bytes]
        height, width, channels = tf.io.decode_png(png).shape
        # legible at TensorBoard's default size: at most ~600 px wide, at least 120 px per trace
        assert channels == 4 and width <= 640 and height >= 120 * traces, (tag, width, height)


def test_early_stop_decided_on_rank0_reaches_every_rank(smoke_data, tmp_path):
    run = tmp_path / "run"
    # No val improvement can beat min_delta=1e9, so rank 0 stops after epoch 2 with patience 0;
    # rank 1 never validates and can only stop there through the broadcast decision.
    result = horovodrun(2, "train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run),
                        "train.epochs=6", "train.patience=0", "train.min_delta=1e9")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    reports = rank_reports(run)
    assert [r["stop_epoch"] for r in reports] == [2, 2]
    assert [r["epochs_run"] for r in reports] == [2, 2]
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    assert "early stopping after epoch 2" in result.stderr


def test_two_ranks_at_batch_b_make_the_updates_of_one_rank_at_2b(smoke_data, tmp_path):
    """Data parallelism is exact: 10 steps of 2 ranks x 16 signals and of 1 rank x the same 32 signals give the same
    losses and weights up to float32 summation order (the gradients are averaged in another order; Adam then moves
    each weight by at most lr = 1e-3 per step, so 1e-4 absolute after 10 steps is far above rounding and far below
    a real difference: a per-rank calibrated sigma moved weights by 7.6e-3). Both likelihoods the configs use."""
    from conftest import REPO
    from launch.horovod import horovodrun_path
    for likelihood in ("gaussian", "calibrated"):
        out = {}
        for ranks in (1, 2):
            out[ranks] = tmp_path / f"{likelihood}-{ranks}.npz"
            result = subprocess.run([horovodrun_path(), "-np", str(ranks), "-H", f"localhost:{ranks}", "--gloo",
                                     sys.executable, str(REPO / "tests" / "data" / "global_batch_steps.py"),
                                     str(smoke_data), str(out[ranks]), likelihood, "32", "10"],
                                    cwd=REPO, capture_output=True, text=True, timeout=600,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
            assert result.returncode == 0, result.stderr[-3000:]
        one, two = np.load(out[1]), np.load(out[2])
        assert one["losses"][-1] < one["losses"][0] - 10                       # it trained
        np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
        np.testing.assert_allclose(two["weights"], one["weights"], atol=1e-4)


def test_a_global_batch_is_split_over_the_ranks_and_kept_when_resumed_on_fewer(smoke_data, tmp_path):
    """With LAMB, whose update goes through Horovod's DistributedOptimizer and whose moments the checkpoint keeps."""
    from conftest import cli
    from cvae.training.trainer import per_rank_batch
    from data_prep.common import UserError
    assert per_rank_batch(64, 0, 4) == 64 and per_rank_batch(64, 96, 4) == 24
    with pytest.raises(UserError, match="train.global_batch_size 30 does not divide over 4 ranks"):
        per_rank_batch(64, 30, 4)
    run = tmp_path / "run"
    result = horovodrun(2, "train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run),
                        "train.epochs=1", "train.global_batch_size=32", "train.optimizer=lamb")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    reports = rank_reports(run)
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    plan = json.loads((run / "run.json").read_text())["plan"]
    assert plan["global_batch"] == 32 and plan["learning_rate"] == 1e-3          # not scaled by the ranks
    assert "x 16 per rank" in result.stderr
    result = cli("train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run), "--resume",
                 "train.epochs=2", "train.global_batch_size=32", "train.optimizer=lamb")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "global batch 32 kept (32 per rank)" in result.stderr and "x 32 per rank" in result.stderr
    result = cli("train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run), "--resume",
                 "train.epochs=3", "train.global_batch_size=64")
    assert result.returncode == 2 and "was trained with train.global_batch_size=32" in result.stderr
