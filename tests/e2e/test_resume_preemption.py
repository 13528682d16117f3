"""Resume, preemption and failure handling of real 2-rank Horovod training jobs."""
import json
import os
import signal
import subprocess
import time

import psutil

from conftest import REPO, SMOKE, TRAINED_RUN_SETTINGS, checkpoint_complete, horovodrun
from launch.horovod import horovodrun_command


def start(*args, controller="gloo", env=None):
    return subprocess.Popen(horovodrun_command(2, list(args), controller=controller), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                                     OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **(env or {})))


def wait_for_checkpoint(run, proc, timeout=180):
    """Block until the first epoch-end checkpoint of `run` is complete."""
    deadline = time.time() + timeout
    while not checkpoint_complete(run):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, f"no checkpoint appeared in {run}"
        time.sleep(0.1)


def rank_pids(proc):
    """{rank: pid} of the training processes under a horovodrun (Gloo or MPI)."""
    found = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            env = child.environ()
            rank = env.get("HOROVOD_RANK", env.get("OMPI_COMM_WORLD_RANK"))
            if child.cmdline()[1:4] == ["-m", "launch.cli", "train"] and rank is not None:
                found[int(rank)] = child.pid
        except psutil.Error:
            pass
    return found


def report(run, rank=0):
    return json.loads((run / "ranks" / f"rank-{rank:03d}.json").read_text())


def test_killed_run_resumes_to_the_same_result(smoke_data, trained_run, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run), *TRAINED_RUN_SETTINGS]
    proc = start(*args)
    wait_for_checkpoint(run, proc)
    ranks = [psutil.Process(pid) for pid in rank_pids(proc).values()]
    for rank in ranks:   # the whole job dies at once, as on a node failure (horovodrun's children too)
        rank.kill()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(ranks, timeout=30)
    assert not (run / "model").exists()
    result = horovodrun(2, *args, "--resume")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "resumed from" in result.stderr
    resumed, straight = report(run), report(trained_run)
    # Tolerance: exact. Data order is seeded per epoch, latent noise per step, and the optimizer,
    # epoch and early-stopping state come from the checkpoint, so the resumed run is bit-identical.
    assert resumed["val_loss_history"][-1] == straight["val_loss_history"][-1]
    assert resumed["weights_sha256"] == straight["weights_sha256"]


def test_sigterm_checkpoints_at_a_step_boundary_and_resume_finishes(smoke_data, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run), "train.epochs=200"]
    proc = start(*args)
    wait_for_checkpoint(run, proc)
    pids = rank_pids(proc)
    assert set(pids) == {0, 1}
    os.kill(pids[1], signal.SIGTERM)   # only rank 1 is told; rank 0 must stop on the same step
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0
    r0, r1 = report(run, 0), report(run, 1)
    assert r0["preempted"] and r1["preempted"] and r0["stop_epoch"] == r1["stop_epoch"] < 200
    assert r0["weights_sha256"] == r1["weights_sha256"]
    assert "preempted: checkpoint at epoch" in out
    stop = r0["stop_epoch"]
    result = horovodrun(2, *args[:-1], f"train.epochs={stop + 1}", "--resume")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert report(run)["stop_epoch"] == stop + 1 and (run / "model" / "decoder.keras").is_file()


def test_a_crashed_rank_fails_the_job_promptly(smoke_data, tmp_path):
    run = tmp_path / "run"
    proc = start("train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run),
                 "train.epochs=500")
    wait_for_checkpoint(run, proc)
    os.kill(rank_pids(proc)[1], signal.SIGKILL)
    t0 = time.time()
    try:
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and time.time() - t0 < 60


def test_fp16_allreduce_accumulation_xla_and_mixed_precision_keep_ranks_identical(smoke_data, tmp_path):
    run = tmp_path / "run"
    result = horovodrun(2, "train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run),
                        "train.epochs=2", "train.fp16_allreduce=true", "train.backward_passes_per_step=2",
                        "train.cache=false", "train.xla=true", "train.mixed_precision=true")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert report(run, 0)["weights_sha256"] == report(run, 1)["weights_sha256"]
