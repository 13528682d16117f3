"""A real one-node Slurm (munge, slurmctld, slurmd) started here: the chained pipeline and preemption/requeue."""
import json
import os
import shutil
import subprocess
import time

import horovod.tensorflow as hvd
import pytest

from conftest import REPO, checkpoint_complete, cli

CLUSTER = REPO / "slurm" / "local_cluster.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    start = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=600)
    if start.returncode == 3:
        pytest.skip(f"Slurm cannot be installed here: {start.stderr.strip()}")
    assert start.returncode == 0, start.stdout + start.stderr
    env = dict(os.environ, SLURM_CONF=start.stdout.strip().split("=", 1)[1], PPG_CVAE_HOME=str(REPO))
    yield env
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=120)


def job(env, jobid) -> dict:
    out = subprocess.run(["scontrol", "show", "job", str(jobid)], env=env, capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def wait_done(env, jobid, timeout=420):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = job(env, jobid)
        if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return info
        time.sleep(1)
    raise AssertionError(f"job {jobid} still {job(env, jobid).get('JobState')} after {timeout} s")


def log_of(info) -> str:
    return open(info["StdOut"]).read()


def test_every_batch_script_logs_into_a_folder_a_fresh_clone_has():
    """Slurm fails a job at start when its --output folder is missing, so that folder is tracked by git."""
    scripts = sorted((REPO / "slurm").glob("*.sbatch"))
    assert scripts
    for script in scripts:
        outputs = [line.split("=", 1)[1].strip() for line in script.read_text().splitlines()
                   if line.startswith("#SBATCH --output=")]
        assert len(outputs) == 1, f"{script.name}: one #SBATCH --output line expected"
        folder = os.path.dirname(outputs[0])
        tracked = subprocess.run(["git", "ls-files", "--", folder], cwd=REPO, capture_output=True, text=True)
        assert tracked.returncode == 0 and tracked.stdout.strip(), f"{script.name}: {folder}/ is not in git"


@pytest.mark.slow
def test_pipeline_runs_every_stage_on_two_tasks(slurm, tmp_path):
    env = dict(slurm, CONFIG="configs/smoke.yaml", DATA_DIR=str(tmp_path / "data"), RUN_DIR=str(tmp_path / "run"),
               OUT=str(tmp_path / "syn.npz"), REPORT_DIR=str(tmp_path / "report"), AGES="30:70:10", N_PER_AGE="20",
               TRAIN_SBATCH_ARGS="--nodes=1 --ntasks-per-node=2 --cpus-per-task=1",
               PREP_SBATCH_ARGS="--cpus-per-task=1")
    out = subprocess.run(["bash", str(REPO / "slurm" / "submit_pipeline.sh")], env=env, capture_output=True,
                         text=True, check=True).stdout
    ids = {line.split()[0]: line.split()[1] for line in out.strip().splitlines()}
    assert set(ids) == {"prep", "train", "generate", "evaluate"}
    # generate cannot start before prep and then train have run, so right after submission it waits on train
    assert "afterok:" + ids["train"] in job(slurm, ids["generate"]).get("Dependency", "")
    for stage in ("prep", "train", "generate", "evaluate"):
        info = wait_done(slurm, ids[stage])
        assert info["JobState"] == "COMPLETED", f"{stage}: {info['JobState']}\n{log_of(info)[-3000:]}"
    ranks = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "ranks").glob("rank-*.json"))]
    assert [r["size"] for r in ranks] == [2, 2] and ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert (tmp_path / "data" / "manifest.json").is_file() and (tmp_path / "syn.npz").is_file()
    assert (tmp_path / "syn.png").is_file()
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["counts"]["synthetic"] == 100
    assert "slurm/logs/ppg-train-" in job(slurm, ids["train"])["StdOut"]


@pytest.fixture(scope="module")
def smoke_prepared(tmp_path_factory):
    data = tmp_path_factory.mktemp("slurm-data") / "data"
    subprocess.run([str(REPO / ".venv" / "bin" / "ppg-cvae"), "prep", "--config", "configs/smoke.yaml", "--out",
                    str(data)], cwd=REPO, check=True, capture_output=True)
    return data


def submit_training(env, data, run, launcher, tasks, epochs=25) -> str:
    env = dict(env, CONFIG="configs/smoke.yaml", DATA_DIR=str(data), RUN_DIR=str(run), LAUNCHER=launcher,
               OVERRIDES=f"train.epochs={epochs} train.patience=100")
    return subprocess.run(["sbatch", "--parsable", "--export=ALL", "--nodes=1", f"--ntasks-per-node={tasks}",
                           "--cpus-per-task=1", "slurm/train.sbatch"], cwd=REPO, env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def wait_for_checkpoint(env, jobid, run, timeout=300):
    deadline = time.time() + timeout
    while not checkpoint_complete(run):
        info = job(env, jobid)
        if info["JobState"] not in ("PENDING", "RUNNING") or time.time() > deadline:
            log = log_of(info)[-3000:] if os.path.isfile(info.get("StdOut", "")) else "(no log yet)"
            raise AssertionError(f"job {jobid} {info['JobState']} with no checkpoint in {run}:\n{log}")
        time.sleep(0.5)


@pytest.mark.parametrize("launcher", [
    pytest.param("srun", marks=pytest.mark.skipif(not hvd.mpi_built(), reason="srun --mpi=pmix needs Horovod built with "
                                                  "MPI (.ci/run installs Open MPI before the build)")),
    pytest.param("horovodrun", marks=pytest.mark.slow)])
def test_preempted_training_checkpoints_requeues_and_resumes(slurm, smoke_prepared, tmp_path, launcher):
    run = tmp_path / "run"
    jobid = submit_training(slurm, smoke_prepared, run, launcher, tasks=2)
    wait_for_checkpoint(slurm, jobid, run)
    subprocess.run(["scancel", "--signal=USR1", "--batch", jobid], env=slurm, check=True)
    info = wait_done(slurm, jobid)
    log = log_of(info)
    assert info["JobState"] == "COMPLETED", log[-3000:]
    assert int(info["Restarts"]) == 1
    assert f"2 ranks via {launcher}" in log and "preempted: checkpoint at epoch" in log and "requeueing job" in log
    assert "restart 1" in log and "resumed from" in log
    final = json.loads((run / "ranks" / "rank-000.json").read_text())
    assert final["stop_epoch"] == 25 and not final["preempted"]
    assert (run / "model" / "decoder.keras").is_file()


@pytest.mark.slow
def test_preempting_one_of_two_jobs_on_a_node_leaves_the_other_alone(slurm, smoke_prepared, tmp_path):
    """Two horovodrun training jobs of the same user on one node: USR1 to one reaches that job's rank only."""
    runs = [tmp_path / "a", tmp_path / "b"]
    ids = [submit_training(slurm, smoke_prepared, run, "horovodrun", tasks=1, epochs=20) for run in runs]
    for jobid, run in zip(ids, runs):
        wait_for_checkpoint(slurm, jobid, run)
    subprocess.run(["scancel", "--signal=USR1", "--batch", ids[0]], env=slurm, check=True)
    first, second = (wait_done(slurm, jobid) for jobid in ids)
    assert (first["JobState"], int(first["Restarts"])) == ("COMPLETED", 1), log_of(first)[-3000:]
    assert (second["JobState"], second["ExitCode"], int(second["Restarts"])) == ("COMPLETED", "0:0", 0), \
        log_of(second)[-3000:]
    assert "preemption signal" not in log_of(second) and "preempted" not in log_of(second)
    for run in runs:
        final = json.loads((run / "ranks" / "rank-000.json").read_text())
        assert final["stop_epoch"] == 20 and not final["preempted"]


def test_train_job_refuses_to_resume_a_run_of_another_configuration(slurm, trained_run, smoke_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    env = dict(slurm, CONFIG="configs/smoke.yaml", DATA_DIR=str(smoke_data), RUN_DIR=str(run),
               OVERRIDES="model.latent_dim=8", LAUNCHER="horovodrun")
    jobid = subprocess.run(["sbatch", "--parsable", "--export=ALL", "--nodes=1", "--ntasks-per-node=1",
                            "--cpus-per-task=1", "slurm/train.sbatch"], cwd=REPO, env=env, capture_output=True,
                           text=True, check=True).stdout.strip()
    info = wait_done(slurm, jobid)
    assert info["JobState"] == "FAILED" and int(info["Restarts"]) == 0
    assert "was trained with model.latent_dim=4, this run has model.latent_dim=8" in log_of(info)


def test_launch_inside_an_allocation_takes_hosts_from_slurm(slurm):
    out = cli("launch", "--dry-run", "--", "train", env={"SLURM_CONF": slurm["SLURM_CONF"],
                                                          "SLURM_JOB_NODELIST": "node[1-2]",
                                                          "SLURM_TASKS_PER_NODE": "2(x2)"})
    assert out.returncode == 0 and "-np 4 -H node1:2,node2:2" in out.stdout, out.stderr


def test_prep_script_passes_each_source_path_and_the_overrides(slurm, tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    t = np.arange(1024) / 125.0
    for k, name in enumerate(("a.npz", "b.npz")):
        n = 40
        signals = np.sin(2 * np.pi * 1.2 * t)[None] + 0.05 * rng.standard_normal((n, 1024))
        np.savez(tmp_path / name, signals=signals.astype(np.float32), age=rng.uniform(20, 80, n),
                 subject_id=np.array([f"{name}-{i // 2}" for i in range(n)]))
    env = dict(slurm, CONFIG="configs/smoke.yaml", DATA_DIR=str(tmp_path / "data"),
               SOURCE=f"{tmp_path / 'a.npz'} {tmp_path / 'b.npz'}", OVERRIDES="data.labels=[age]")
    jobid = subprocess.run(["sbatch", "--parsable", "--export=ALL", "--cpus-per-task=1", "slurm/prep.sbatch"],
                           cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.strip()
    info = wait_done(slurm, jobid)
    assert info["JobState"] == "COMPLETED", log_of(info)[-3000:]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert sorted(manifest["source"]["paths"]) == [str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]
    assert list(manifest["labels"]) == ["age"]


def test_elastic_host_discovery_lists_the_jobs_nodes_as_slurm_has_them(slurm):
    out = subprocess.run(["srun", "--nodes=1", "--ntasks=1", "--ntasks-per-node=1", "sh",
                          str(REPO / "launch" / "discover_hosts.sh")], env=dict(slurm, PPG_CVAE_SLOTS="3"),
                         capture_output=True, text=True, timeout=120)
    node = subprocess.run(["sinfo", "-h", "-o", "%n"], env=slurm, capture_output=True, text=True).stdout.split()[0]
    assert out.returncode == 0 and out.stdout.split() == [f"{node}:3"], out.stderr
    outside = subprocess.run(["sh", str(REPO / "launch" / "discover_hosts.sh")], capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "PPG_CVAE"))})
    assert outside.returncode == 1 and "PPG_CVAE_HOSTS_FILE" in outside.stderr
