"""Building and running launcher command lines: horovodrun (local, explicit hosts, or the Slurm allocation)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from data_prep.common import UserError


def horovodrun_path() -> str:
    """The horovodrun beside this Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "horovodrun"
    return str(local) if local.exists() else "horovodrun"


def horovodrun_command(np_: int, args: list[str], hosts: str | None = None, controller: str = "gloo") -> list[str]:
    """horovodrun -np N -H hosts --gloo|--mpi <this python> -m launch.cli ARGS."""
    return [horovodrun_path(), "-np", str(np_), "-H", hosts or f"localhost:{np_}", f"--{controller}",
            sys.executable, "-m", "launch.cli", *args]


DISCOVER_HOSTS = Path(__file__).resolve().parent / "discover_hosts.sh"


def elastic_command(np_: int, min_np: int, max_np: int, args: list[str]) -> list[str]:
    """horovodrun for elastic training over Gloo: hosts come and go through launch/discover_hosts.sh."""
    return [horovodrun_path(), "-np", str(np_), "--min-np", str(min_np), "--max-np", str(max_np),
            "--host-discovery-script", str(DISCOVER_HOSTS), "--gloo", sys.executable, "-m", "launch.cli", *args]


def run(command: list[str]) -> int:
    """Run a launcher command with unbuffered rank output; returns its exit code."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.call(command, env=env)


def expand_tasks_per_node(spec: str) -> list[int]:
    """Slurm's SLURM_TASKS_PER_NODE, e.g. '4(x2),2' -> [4, 4, 2]."""
    out = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not m:
            raise UserError(f"cannot parse SLURM_TASKS_PER_NODE={spec!r}")
        out += [int(m.group(1))] * int(m.group(2) or 1)
    return out


def slurm_hosts(env: dict) -> str | None:
    """'host1:4,host2:4' for the current Slurm allocation, or None outside one."""
    nodelist = env.get("SLURM_JOB_NODELIST")
    if not nodelist:
        return None
    try:
        names = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise UserError(f"inside a Slurm allocation ({nodelist}) but 'scontrol show hostnames' failed ({exc}); "
                        "pass --hosts explicitly") from None
    slots = expand_tasks_per_node(env.get("SLURM_TASKS_PER_NODE", ",".join("1" for _ in names)))
    if len(slots) != len(names):
        raise UserError(f"SLURM_TASKS_PER_NODE gives {len(slots)} nodes, the node list {len(names)}")
    return ",".join(f"{h}:{n}" for h, n in zip(names, slots))


def host_slots(item: str) -> int | None:
    """The slots of one 'host:slots' item, or None when it is not one (slots >= 1)."""
    m = re.fullmatch(r"[A-Za-z0-9._-]+:(\d+)", item.strip())
    return int(m.group(1)) if m and int(m.group(1)) >= 1 else None


def parse_hosts(hosts: str) -> int:
    """Total slots of 'h1:4,h2:4'; a malformed list is a user error."""
    slots = [host_slots(item) for item in hosts.split(",")]
    if None in slots:
        raise UserError(f"--hosts {hosts!r}: use host:slots[,host:slots...], e.g. node1:4,node2:4")
    return sum(slots)
