#!/usr/bin/env bash
# A real one-node Slurm on this machine, for tests and trying the pipeline: `start` installs (Debian packages,
# as root) and starts munge, slurmctld and slurmd; `stop` stops what it started. Prints `export SLURM_CONF=...`.
# State lives in $PPG_SLURM_DIR (default /var/tmp/ppg-slurm). Exit 3 = packages unavailable (no apt access).
set -euo pipefail
DIR=${PPG_SLURM_DIR:-/var/tmp/ppg-slurm}
CONF=$DIR/slurm.conf
host=$(hostname -s)

# libpmix-dev: the PMIx library (libpmix.so) Slurm's mpi/pmix plugin opens for `srun --mpi=pmix`; Open MPI's
# development package brings it too.
PACKAGES="slurmctld slurmd slurm-client munge libpmix-dev"

install() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && ldconfig -p | grep -q 'libpmix\.so ' && return 0
  [ "$(id -u)" = 0 ] || { echo "local_cluster: Slurm or PMIx is not installed and installing needs root" >&2; exit 3; }
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || { echo "local_cluster: apt is unreachable; cannot install Slurm" >&2; exit 3; }
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null \
      || { echo "local_cluster: apt-get install $PACKAGES failed" >&2; exit 3; }
  fi
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/started-munge"
  fi
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  local mem cpus
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$CONF" <<CONF
ClusterName=ppgcvae
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
# a requeued job may start again after cred_expire + 1 s (default 120 s; shortened for tests)
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
JobRequeue=1
FirstJobId=$(( $(date +%s) % 60000000 + 1 ))
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
}

case "${1:-}" in
  start)
    install
    mkdir -p "$DIR"
    start_munge
    write_conf
    export SLURM_CONF=$CONF
    pgrep -x slurmctld >/dev/null || slurmctld -f "$CONF"
    pgrep -x slurmd >/dev/null || slurmd -f "$CONF"
    for _ in $(seq 60); do
      state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
      case "$state" in idle*|mix*|alloc*) break ;; down*|drain*) scontrol update nodename="$host" state=resume || true ;; esac
      sleep 1
    done
    sinfo -h -N -o %t | grep -qE 'idle|mix|alloc' || { echo "local_cluster: node not ready: $(sinfo -N)" >&2; exit 1; }
    echo "export SLURM_CONF=$CONF"
    ;;
  stop)
    export SLURM_CONF=$CONF
    scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
      [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    for _ in $(seq 20); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.5; done
    if [ -f "$DIR/started-munge" ]; then pkill -x munged || true; rm -f "$DIR/started-munge"; fi
    rm -rf "$DIR/state" "$DIR/spool"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
