"""Elastic training on localhost: a worker killed mid-run, the job goes on with one, a host added back, two again."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil

from conftest import REPO, SMOKE, checkpoint_complete, cli


def workers(proc) -> dict:
    """{pid: host} of the training processes under the launcher."""
    found = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            env, cmd = child.environ(), child.cmdline()
            if "launch.cli" in " ".join(cmd) and "train" in cmd and "HOROVOD_RANK" in env:
                found[child.pid] = env["HOROVOD_HOSTNAME"]
        except psutil.Error:
            pass
    return found


def wait_for(predicate, proc, what: str, timeout: float = 120):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the job ended before {what}"
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


def test_a_killed_worker_is_dropped_a_joining_one_synced_and_the_run_completes(smoke_data, tmp_path):
    hosts, run, log = tmp_path / "hosts", tmp_path / "run", tmp_path / "log"
    hosts.write_text("localhost:1\n127.0.0.1:1\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launch.cli", "launch", "--elastic", "--np", "2",
             "--min-np", "1", "--max-np", "2", "--hosts-file", str(hosts), "--", "train", "--config", str(SMOKE),
             "--data", str(smoke_data), "--run-dir", str(run), "train.epochs=14", "train.patience=100",
             "train.elastic_commit_steps=1"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    text = lambda: log.read_text()   # noqa: E731
    try:
        wait_for(lambda: checkpoint_complete(run), proc, "first checkpoint")
        time.sleep(0.5)                                      # into the next epoch
        victim = [pid for pid, host in workers(proc).items() if host == "127.0.0.1"]
        assert len(victim) == 1, workers(proc)
        os.kill(victim[0], signal.SIGKILL)
        wait_for(lambda: "elastic reset: 2 -> 1" in text(), proc, "reset to 1 rank")
        wait_for(lambda: "training on 1 rank(s)" in text(), proc, "training on 1 rank")
        with open(hosts, "a") as fh:                         # a slot comes back
            fh.write(f"{socket.gethostname()}:1\n")
        wait_for(lambda: "elastic reset: 1 -> 2" in text(), proc, "reset back to 2 ranks")
        assert proc.wait(timeout=300) == 0, text()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = text()
    # the learning rate follows the world: smoke.yaml's 1e-3 per rank
    assert re.search(r"elastic reset: 2 -> 1 rank\(s\); \d+ steps/epoch x 16 per rank, learning rate 1\.00e-03", out)
    assert re.search(r"elastic reset: 1 -> 2 rank\(s\); \d+ steps/epoch x 16 per rank, learning rate 2\.00e-03", out)
    # after the start and after each reset every rank logs its weights' digest: equal within each world
    synced = re.findall(r"rank (\d+) of (\d+): weights ([0-9a-f]+)", out)
    assert [n for _, n, _ in synced] == ["2", "2", "1", "2", "2"], synced
    for world in (synced[0:2], synced[3:5]):
        assert world[0][2] == world[1][2], world
    assert len({d for _, _, d in synced}) == 3               # the model trained between the resets
    assert re.search(r"trained \d+ epoch\(s\) on 2 rank\(s\)", out)
    reports = [(run / "ranks" / f"rank-{r:03d}.json").read_text() for r in (0, 1)]
    digests = {re.search(r'"weights_sha256": "([0-9a-f]+)"', r).group(1) for r in reports}
    assert len(digests) == 1                                  # the two final ranks end equal
    generated = cli("generate", "--model", str(run), "--ages", "30,60", "--n-per-age", "4",
                    "--out", str(tmp_path / "syn.npz"))
    assert generated.returncode == 0, generated.stderr[-2000:]
