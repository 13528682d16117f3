"""Shared fixtures: a smoke-scale dataset and a 2-rank Horovod training run, made once per session; tests/unit is
held to pure logic (a test there that starts a process fails)."""
from __future__ import annotations

import _posixsubprocess
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
TRAINED_RUN_SETTINGS = ("model.kl_warmup_epochs=3",)   # trained_run's overrides of SMOKE, for runs compared with it
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_USE_LEGACY_KERAS"] = "1"   # as cvae sets it, for test code that imports TensorFlow first


UNIT = REPO / "tests" / "unit"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long end-to-end check, run by `make test-full`, not by `make test`")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under tests/unit, starting a process (subprocess, multiprocessing, fork), fixtures included, fails the test:
    such a test belongs in tests/e2e."""
    if not item.path.is_relative_to(UNIT):
        yield
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"{item.nodeid} starts a process; tests/unit is in-process only: move it to tests/e2e")

    saved = subprocess._fork_exec, _posixsubprocess.fork_exec, os.fork, os.posix_spawn, os.posix_spawnp
    subprocess._fork_exec = _posixsubprocess.fork_exec = os.fork = os.posix_spawn = os.posix_spawnp = refuse
    try:
        yield
    finally:
        subprocess._fork_exec, _posixsubprocess.fork_exec, os.fork, os.posix_spawn, os.posix_spawnp = saved


def cli(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m launch.cli ARGS` in a fresh process; returns the completed process (text output)."""
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def horovodrun(np_: int, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`horovodrun -np N --gloo` on localhost running `launch.cli ARGS` with this interpreter."""
    from launch.horovod import horovodrun_command
    return subprocess.run(horovodrun_command(np_, list(args)), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def checkpoint_complete(run: Path) -> bool:
    """True once a checkpoint of the run is complete: the manager writes its state file after the checkpoint's
    files (an .index alone may belong to one still being written)."""
    return (run / "checkpoints" / "checkpoint").is_file()


def snapshot(directory: Path) -> dict:
    """{relative path: bytes} of every file below `directory`, lock files aside: to show nothing changed."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def pickle_call(module: str, name: str, *args) -> bytes:
    """A protocol-2 pickle whose load calls module.name(*args): the shape of every known gadget."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + pickle.dumps(tuple(args), 2)[2:-1] + b"R."


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "data"
    result = cli("prep", "--config", str(SMOKE), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def trained_run(smoke_data, tmp_path_factory) -> Path:
    """A finished 2-rank run on the smoke data (3 epochs, the KL weight warmed up over all 3)."""
    run = tmp_path_factory.mktemp("run") / "run"
    result = horovodrun(2, "train", "--config", str(SMOKE), "--data", str(smoke_data), "--run-dir", str(run),
                        *TRAINED_RUN_SETTINGS)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    (run.parent / "train.log").write_text(result.stdout + result.stderr)
    return run


@pytest.fixture(scope="session")
def cohort():
    """cohorts.evaluation_cohort(), made once per session."""
    from cohorts import evaluation_cohort
    return evaluation_cohort()
