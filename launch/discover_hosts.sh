#!/bin/sh
# Host discovery for elastic training (horovodrun --host-discovery-script): prints one "host:slots" line per host
# that may run workers now. With PPG_CVAE_HOSTS_FILE, that file's lines (# comments allowed), re-read at every call:
# edit it to add or remove hosts. Else, inside a Slurm job, the job's nodes as Slurm lists them now, with
# PPG_CVAE_SLOTS (default SLURM_NTASKS_PER_NODE, else 1) slots each.
set -eu
if [ -n "${PPG_CVAE_HOSTS_FILE:-}" ]; then
  sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PPG_CVAE_HOSTS_FILE" | grep -v '^$' || true
elif [ -n "${SLURM_JOB_ID:-}" ]; then
  for host in $(scontrol show hostnames "$(squeue -h -j "$SLURM_JOB_ID" -o %N)"); do
    echo "$host:${PPG_CVAE_SLOTS:-${SLURM_NTASKS_PER_NODE:-1}}"
  done
else
  echo "discover_hosts.sh: set PPG_CVAE_HOSTS_FILE (lines of host:slots) or run inside a Slurm job" >&2
  exit 1
fi
