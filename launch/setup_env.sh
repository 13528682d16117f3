#!/usr/bin/env bash
# Idempotent environment setup: .venv, the package with pinned deps, Horovod 0.28.1 (TF + Gloo [+ MPI]
# [+ NCCL on GPU hosts]). PPG_CVAE_GPU=1/0 forces the GPU/CPU build; unset, a GPU listed by nvidia-smi picks GPU.
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

case "${PPG_CVAE_GPU:-auto}" in
  1) gpu=1 ;;
  0) gpu=0 ;;
  auto) gpu=0; nvidia-smi -L >/dev/null 2>&1 && gpu=1 ;;
  *) die "PPG_CVAE_GPU=$PPG_CVAE_GPU; use 1 (GPU build), 0 (CPU build) or leave it unset (GPU when nvidia-smi lists one)" ;;
esac
flavour=$([ $gpu = 1 ] && echo gpu || echo cpu)

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

# Reinstall the package only when setup.py or the flavour changed since the last successful install.
stamp="$VENV/.ppg-cvae-setup.sha256"
want="$(sha256sum setup.py | cut -d' ' -f1) $flavour"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PY" -m pip install -q --upgrade pip wheel "setuptools==69.5.1" packaging
  other=$([ $gpu = 1 ] && echo tensorflow-cpu || echo tensorflow)   # both install the same module: keep one
  "$PY" -m pip uninstall -q -y "$other" 2>/dev/null || true
  "$PY" -m pip install -q -e ".[$flavour,test]"
  echo "$want" > "$stamp"
fi

# GPU: Horovod's GPU operations use the NCCL that TensorFlow's CUDA wheels bring (nvidia-nccl-cu12) and
# need a CUDA 12 toolkit (pip's nvidia-cuda-nvcc-cu12 ships ptxas but no nvcc): CUDA_HOME, else /usr/local/cuda,
# else the one whose nvcc is on PATH.
nccl_env=()
if [ $gpu = 1 ]; then
  nvcc_bin=${CUDA_HOME:+$CUDA_HOME/bin/nvcc}
  [ -n "$nvcc_bin" ] || [ ! -x /usr/local/cuda/bin/nvcc ] || nvcc_bin=/usr/local/cuda/bin/nvcc
  nvcc_bin=${nvcc_bin:-$(command -v nvcc || echo nvcc)}
  [ -x "$nvcc_bin" ] || die "no CUDA compiler ($nvcc_bin) for Horovod's NCCL operations; install a CUDA 12 toolkit and set CUDA_HOME to it"
  cuda_home=$(cd "$(dirname "$nvcc_bin")/.." && pwd)
  cuda_release=$("$nvcc_bin" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p')
  [ "${cuda_release%%.*}" = 12 ] || [ "${PPG_CVAE_ANY_CUDA:-0}" = 1 ] \
    || die "$nvcc_bin is CUDA $cuda_release, TensorFlow 2.15 runs on CUDA 12: set CUDA_HOME to a CUDA 12 toolkit (PPG_CVAE_ANY_CUDA=1 builds with this one anyway)"
  nccl_dir=$("$PY" -c 'import os, nvidia.nccl; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null) \
    || die "no nvidia-nccl-cu12 in $VENV (it comes with tensorflow[and-cuda]); run: $PY -m pip install -e '.[gpu]'"
  ln -sf libnccl.so.2 "$nccl_dir/lib/libnccl.so"   # the wheel ships only the versioned name the linker cannot find
  nccl_env=(HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_CUDA_HOME="$cuda_home" HOROVOD_NCCL_HOME="$nccl_dir"
            HOROVOD_NCCL_LINK=SHARED LDFLAGS="-Wl,-rpath,$nccl_dir/lib"
            HOROVOD_BUILD_CUDA_CC_LIST="${HOROVOD_BUILD_CUDA_CC_LIST:-80,86,89,90}")
fi

# Horovod: skip the build when a working one with the wanted controllers is installed.
want_mpi=0
command -v mpicxx >/dev/null && want_mpi=1
horovod_ok() {  # the same facts `horovodrun --check-build` lists, in a third of the time
  "$PY" - "$want_mpi" "$gpu" <<'PYEOF' 2>/dev/null
import sys
import horovod.tensorflow as hvd
mpi, nccl = sys.argv[1] == "1", sys.argv[2] == "1"
sys.exit(0 if hvd.gloo_built() and (not mpi or hvd.mpi_built()) and (not nccl or hvd.nccl_built()) else 1)
PYEOF
}
parts="TensorFlow + Gloo"
[ $want_mpi = 1 ] && parts+=" + MPI"
[ $gpu = 1 ] && parts+=" + NCCL"
if ! horovod_ok; then
  echo "setup: building horovod==$HOROVOD_VERSION ($parts; ~3-5 min, longer with NCCL)"
  extra=("${nccl_env[@]}")
  [ "$want_mpi" = 1 ] && extra+=(HOROVOD_WITH_MPI=1)
  env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1 \
      "${extra[@]}" "$PY" -m pip install -q --no-cache-dir --no-build-isolation --force-reinstall --no-deps \
      "horovod==$HOROVOD_VERSION" || die "Horovod build failed; see the pip output above"
  "$PY" -m pip install -q "horovod==$HOROVOD_VERSION"   # its pure-Python deps (cloudpickle, psutil, ...)
  horovod_ok || die "Horovod installed but lacks some of $parts; see '$VENV/bin/horovodrun --check-build'"
fi
echo "setup: ready (Horovod $HOROVOD_VERSION with $parts; activate with 'source $VENV/bin/activate')"
