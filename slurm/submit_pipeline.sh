#!/usr/bin/env bash
# Submit prep -> train -> generate -> evaluate, chained with --dependency=afterok; prints the job IDs.
# Environment (all optional): CONFIG DATA_DIR RUN_DIR OUT REPORT_DIR AGES N_PER_AGE OVERRIDES SOURCE GEN_ARGS,
# and TRAIN_SBATCH_ARGS / PREP_SBATCH_ARGS / GEN_SBATCH_ARGS / EVAL_SBATCH_ARGS for extra sbatch flags
# (e.g. TRAIN_SBATCH_ARGS="--nodes=1 --ntasks-per-node=2 --gpus-per-task=0"). Skip prep with SKIP_PREP=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PPG_CVAE_HOME=${PPG_CVAE_HOME:-$(dirname "$here")}
cd "$PPG_CVAE_HOME"
# Each submission trains into its own run directory unless RUN_DIR names one (same configuration to resume it).
export CONFIG=${CONFIG:-configs/default.yaml} DATA_DIR=${DATA_DIR:-data}
export RUN_DIR=${RUN_DIR:-runs/pipeline-$(date +%Y%m%d-%H%M%S)-$$}
export OUT=${OUT:-synthetic/cohort.npz} REPORT_DIR=${REPORT_DIR:-reports/pipeline}
submit() { sbatch --parsable --export=ALL "$@"; }
echo "run dir  $RUN_DIR" >&2
dep=()
if [ "${SKIP_PREP:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  prep=$(submit ${PREP_SBATCH_ARGS:-} slurm/prep.sbatch); echo "prep     $prep"; dep=(--dependency="afterok:$prep")
fi
# shellcheck disable=SC2086
train=$(submit "${dep[@]}" ${TRAIN_SBATCH_ARGS:-} slurm/train.sbatch); echo "train    $train"
# shellcheck disable=SC2086
gen=$(submit --dependency="afterok:$train" ${GEN_SBATCH_ARGS:-} slurm/generate.sbatch); echo "generate $gen"
# shellcheck disable=SC2086
eval=$(submit --dependency="afterok:$gen" ${EVAL_SBATCH_ARGS:-} slurm/evaluate.sbatch); echo "evaluate $eval"
