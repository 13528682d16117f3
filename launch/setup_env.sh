#!/usr/bin/env bash
# Idempotent environment setup: .venv, the package with pinned deps, Horovod 0.28.1 (TF + Gloo [+ MPI]).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
HOROVOD_VERSION=0.28.1

die() { echo "setup: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH; install Python 3.11 or set PYTHON=/path/to/python3.11"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "3.11" ] || die "Python 3.11 is required (TensorFlow 2.15 + Horovod 0.28.1), found $pyver at $(command -v "$PYTHON"); set PYTHON=/path/to/python3.11"
command -v g++ >/dev/null || die "no C++ compiler (g++) to build Horovod; install it: apt-get install g++"
command -v cmake >/dev/null || die "no cmake to build Horovod; install cmake 3.x: apt-get install cmake"
cmake_major=$(cmake --version | sed -n 's/^cmake version \([0-9]*\).*/\1/p')
[ "${cmake_major:-0}" -lt 4 ] || die "cmake $(cmake --version | head -1 | cut -d' ' -f3) rejects gloo's CMakeLists; put cmake 3.x (apt-get install cmake) first on PATH"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

# Reinstall the package only when setup.py changed since the last successful install.
stamp="$VENV/.ppg-cvae-setup.sha256"
want=$(sha256sum setup.py | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PY" -m pip install -q --upgrade pip wheel "setuptools==69.5.1" packaging
  "$PY" -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi

# Horovod: skip the build when a working one with the wanted controllers is installed.
want_mpi=0
command -v mpicxx >/dev/null && want_mpi=1
horovod_ok() {  # the same facts `horovodrun --check-build` lists, in a third of the time
  "$PY" - "$want_mpi" <<'PYEOF' 2>/dev/null
import sys
import horovod.tensorflow as hvd
sys.exit(0 if hvd.gloo_built() and (sys.argv[1] == "0" or hvd.mpi_built()) else 1)
PYEOF
}
if ! horovod_ok; then
  echo "setup: building horovod==$HOROVOD_VERSION (TensorFlow + Gloo$([ $want_mpi = 1 ] && echo ' + MPI'); ~3-5 min)"
  extra=()
  [ "$want_mpi" = 1 ] && extra=(HOROVOD_WITH_MPI=1)
  env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1 \
      "${extra[@]}" "$PY" -m pip install -q --no-cache-dir --no-build-isolation --force-reinstall --no-deps \
      "horovod==$HOROVOD_VERSION" || die "Horovod build failed; see the pip output above"
  "$PY" -m pip install -q "horovod==$HOROVOD_VERSION"   # its pure-Python deps (cloudpickle, psutil, ...)
  horovod_ok || die "Horovod installed but lacks TensorFlow/Gloo$([ $want_mpi = 1 ] && echo /MPI); see 'horovodrun --check-build'"
fi
echo "setup: ready (Horovod $HOROVOD_VERSION with TensorFlow + Gloo$([ $want_mpi = 1 ] && echo ' + MPI'); activate with 'source $VENV/bin/activate')"
