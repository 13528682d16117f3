#!/usr/bin/env bash
# Smoke test of the whole stack on one Python: a fresh venv by `make setup`'s script, prep of the smoke data, 2-rank
# Horovod training (equal weights on both ranks), generate and evaluate. Usage: tests/smoke_python.sh PYTHON [DIR]
# (DIR: scratch space, default /tmp/ppg-cvae-smoke-<version>; its venv is reused when setup finds it complete).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:?usage: tests/smoke_python.sh PYTHON [DIR]}
ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { echo "smoke: $PYTHON does not run" >&2; exit 2; }
DIR=${2:-/tmp/ppg-cvae-smoke-$ver}
V="$DIR/venv"
start=$(date +%s)
fail() { echo "smoke $ver: FAILED: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

PYTHON="$PYTHON" VENV="$V" bash launch/setup_env.sh || fail "setup"
setup_s=$(( $(date +%s) - start ))
"$V/bin/python" -c "import tensorflow as tf, numpy as np, sys; print('smoke $ver:', sys.version.split()[0], 'TensorFlow', tf.__version__, 'numpy', np.__version__)" 2>/dev/null
rm -rf "$DIR/data" "$DIR/run" "$DIR/synthetic.npz" "$DIR/synthetic.png" "$DIR/report"
"$V/bin/ppg-cvae" prep --config configs/smoke.yaml --out "$DIR/data" || fail "prep"
"$V/bin/ppg-cvae" launch --np 2 -- train --config configs/smoke.yaml --data "$DIR/data" --run-dir "$DIR/run" \
  || fail "2-rank training"
"$V/bin/python" - "$DIR/run" <<'PYEOF' || fail "the two ranks ended with different weights"
import json, pathlib, sys
reports = [json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1], "ranks").glob("rank-*.json"))]
assert [r["rank"] for r in reports] == [0, 1] and reports[0]["weights_sha256"] == reports[1]["weights_sha256"], reports
PYEOF
"$V/bin/ppg-cvae" generate --model "$DIR/run" --ages 30:70:10 --n-per-age 20 --out "$DIR/synthetic.npz" \
  || fail "generate"
"$V/bin/ppg-cvae" evaluate --synthetic "$DIR/synthetic.npz" --data "$DIR/data" --out "$DIR/report" || fail "evaluate"
[ -s "$DIR/report/report.md" ] && [ -s "$DIR/report/metrics.json" ] || fail "no report"
echo "smoke $ver: setup ${setup_s} s, prep + 2-rank training + generate + evaluate $(( $(date +%s) - start - setup_s )) s, venv $(du -sh "$V" | cut -f1)"
echo "1 passed, 0 failed"
