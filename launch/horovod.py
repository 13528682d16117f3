"""Building and running horovodrun command lines (local ranks, explicit hosts)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def horovodrun_path() -> str:
    """The horovodrun beside this Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "horovodrun"
    return str(local) if local.exists() else "horovodrun"


def horovodrun_command(np_: int, args: list[str], hosts: str | None = None, controller: str = "gloo") -> list[str]:
    """horovodrun -np N -H hosts --gloo|--mpi <this python> -m launch.cli ARGS."""
    return [horovodrun_path(), "-np", str(np_), "-H", hosts or f"localhost:{np_}", f"--{controller}",
            sys.executable, "-m", "launch.cli", *args]


def run(command: list[str]) -> int:
    """Run a launcher command with unbuffered rank output; returns its exit code."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.call(command, env=env)
