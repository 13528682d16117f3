# Sourced by the sbatch scripts: locate ppg-cvae and set what every job step needs. No training logic here.
# PPG_CVAE_HOME  repository / install prefix with .venv (default: the directory above slurm/)
# PPG_CVAE_BIN   the ppg-cvae executable (default: $PPG_CVAE_HOME/.venv/bin/ppg-cvae, else ppg-cvae on PATH)
set -euo pipefail
PPG_CVAE_HOME=${PPG_CVAE_HOME:-${SLURM_SUBMIT_DIR:-$(pwd)}}
if [ -z "${PPG_CVAE_BIN:-}" ]; then
  if [ -x "$PPG_CVAE_HOME/.venv/bin/ppg-cvae" ]; then PPG_CVAE_BIN="$PPG_CVAE_HOME/.venv/bin/ppg-cvae"
  else PPG_CVAE_BIN=$(command -v ppg-cvae || true); fi
fi
[ -n "$PPG_CVAE_BIN" ] || { echo "ppg-cvae not found: set PPG_CVAE_BIN or PPG_CVAE_HOME (with .venv)" >&2; exit 2; }
PPG_PY="$(dirname "$PPG_CVAE_BIN")/python"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
cd "$PPG_CVAE_HOME"
