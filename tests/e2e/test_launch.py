"""Launchers: mpirun, launcher/Horovod mismatch, `ppg-cvae launch`, and the TensorBoard server."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, SMOKE, cli
from launch.horovod import expand_tasks_per_node


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="Open MPI is not installed (.ci/run installs it)")
def test_mpirun_two_ranks(smoke_data, tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONUNBUFFERED="1")
    result = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", sys.executable, "-m", "launch.cli", "train",
                             "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(tmp_path / "run"),
                             "train.epochs=2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "ranks").glob("*.json"))]
    assert [r["size"] for r in ranks] == [2, 2] and ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]


def test_launcher_mismatch_is_a_clear_error(smoke_data, tmp_path):
    # An MPI launcher that Horovod cannot join leaves it at size 1 while the launcher says 2.
    result = cli("train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(tmp_path / "r"),
                 env={"OMPI_COMM_WORLD_SIZE": "2"})
    assert result.returncode == 2 and "started 2 processes but Horovod sees 1" in result.stderr


def test_launch_builds_horovodrun_commands():
    out = cli("launch", "--np", "4", "--hosts", "n1:2,n2:2", "--dry-run", "--", "train", "--config", "c.yaml")
    assert out.returncode == 0
    assert "-np 4 -H n1:2,n2:2 --gloo" in out.stdout and out.stdout.strip().endswith("train --config c.yaml")
    assert cli("launch", "--np", "5", "--hosts", "n1:2,n2:2", "--dry-run", "--", "train").returncode == 2
    assert "host:slots" in cli("launch", "--hosts", "n1", "--", "train").stderr
    assert expand_tasks_per_node("4(x2),2") == [4, 4, 2]


@contextlib.contextmanager
def tensorboard(path):
    """`ppg-cvae tensorboard PATH` on a free loopback port: yields (port, output lines so far), stops it after."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "tensorboard", str(path), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        yield port, output
    finally:
        proc.terminate()
        output.append(proc.communicate(timeout=30)[0])


def poll_json(url: str, done, seconds: float = 90):
    """GET `url` until `done(answer)` or the time is up; the last answer."""
    deadline, answer = time.time() + seconds, None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                answer = json.loads(r.read())
            if done(answer):
                break
        except OSError:
            pass
        time.sleep(1)
    return answer


def test_tensorboard_serves_a_folder_of_runs_each_under_its_name(trained_run, tmp_path):
    for name in ("lr-a", "lr-b"):
        shutil.copytree(trained_run / "tensorboard", tmp_path / name / "tensorboard")
    (tmp_path / "notes").mkdir()
    with tensorboard(tmp_path) as (port, _):
        runs = poll_json(f"http://127.0.0.1:{port}/data/runs", lambda r: len(r) >= 2)
    assert sorted(runs) == ["lr-a", "lr-b"]


def test_tensorboard_serves_the_runs_scalars_on_loopback(trained_run):
    with tensorboard(trained_run) as (port, output):
        tags = poll_json(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", bool) or {}
        run_tags = next(iter(tags.values()), {})
        assert "train/loss" in run_tags and "val/loss" in run_tags, tags
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={trained_run.name}&tag=val/loss"
        assert len(poll_json(url, bool)) == 3
    assert f"ssh -N -L {port}:127.0.0.1:{port}" in output[0]
