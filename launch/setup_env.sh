#!/usr/bin/env bash
# Idempotent environment setup: .venv on Python 3.11-3.13, the package with pinned deps (TensorFlow + tf-keras),
# Horovod 0.28.1 from its PyPI sdist with launch/horovod-0.28.1.patch (TF + Gloo [+ MPI] [+ NCCL on GPU hosts]).
# PYTHON picks the interpreter (else the one $VENV was made with, else the newest python3.13/3.12/3.11 on PATH that
# runs; a $VENV of another Python is rebuilt). PPG_CVAE_GPU=1/0 forces the GPU/CPU build; unset, a GPU listed by
# nvidia-smi picks GPU.
set -euo pipefail
VENV=${VENV:-.venv}
HOROVOD_VERSION=0.28.1
HOROVOD_PATCH=launch/horovod-$HOROVOD_VERSION.patch
SUPPORTED="3.11 3.12 3.13"

die() { echo "setup: $*" >&2; exit 1; }

pyver_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
if [ -z "${PYTHON:-}" ] && [ -x "$VENV/bin/python" ]; then   # keep the interpreter an existing venv was made with
  base=$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)' 2>/dev/null) || base=
  v=$([ -n "$base" ] && pyver_of "$base") || v=
  case " $SUPPORTED " in *" ${v:-none} "*) PYTHON=$base ;; esac
fi
if [ -z "${PYTHON:-}" ]; then
  for cand in python3.13 python3.12 python3.11 python3; do
    v=$(pyver_of "$cand") || continue
    case " $SUPPORTED " in *" $v "*) PYTHON=$cand; break ;; esac
  done
  [ -n "${PYTHON:-}" ] || die "no Python 3.11, 3.12 or 3.13 on PATH; install one (e.g. apt-get install python3 python3-venv python3-dev) or set PYTHON=/path/to/python3.x"
fi
pyver=$(pyver_of "$PYTHON") || die "PYTHON=$PYTHON does not run; set PYTHON to a Python 3.11, 3.12 or 3.13 interpreter"
case " $SUPPORTED " in *" $pyver "*) ;; *) die "Python $pyver at $PYTHON is not supported; set PYTHON to a Python 3.11, 3.12 or 3.13 interpreter" ;; esac
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON cannot create virtual environments; install its venv module (e.g. apt-get install python$pyver-venv)"
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

# A venv of another Python, or of the previous release (tensorflow-cpu beside tensorflow breaks both), is rebuilt.
if [ -x "$VENV/bin/python" ]; then
  old=$(pyver_of "$VENV/bin/python" || echo none)
  if [ "$old" != "$pyver" ] || "$VENV/bin/python" -m pip show -q tensorflow-cpu >/dev/null 2>&1; then
    echo "setup: rebuilding $VENV (it holds Python $old or tensorflow-cpu; this setup is Python $pyver with tensorflow)"
    rm -rf "$VENV"
  fi
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

# Reinstall the package only when setup.py or the flavour changed since the last successful install.
stamp="$VENV/.ppg-cvae-setup.sha256"
want="$(sha256sum setup.py | cut -d' ' -f1) $flavour"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  setuptools_pin=$(sed -n 's/.*"\(setuptools==[0-9.]*\)".*/\1/p' setup.py)
  "$PY" -m pip install -q --upgrade pip wheel "$setuptools_pin" packaging
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
    || die "$nvcc_bin is CUDA $cuda_release, TensorFlow 2.21 runs on CUDA 12: set CUDA_HOME to a CUDA 12 toolkit (PPG_CVAE_ANY_CUDA=1 builds with this one anyway)"
  # nvidia.nccl is a namespace package (no __file__) in the current nvidia-nccl-cu12 wheels
  nccl_dir=$("$PY" -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null) \
    || die "no nvidia-nccl-cu12 in $VENV (it comes with tensorflow[and-cuda]); run: $PY -m pip install -e '.[gpu]'"
  ln -sf libnccl.so.2 "$nccl_dir/lib/libnccl.so"   # the wheel ships only the versioned name the linker cannot find
  nccl_env=(HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_CUDA_HOME="$cuda_home" HOROVOD_NCCL_HOME="$nccl_dir"
            HOROVOD_NCCL_LINK=SHARED LDFLAGS="-Wl,-rpath,$nccl_dir/lib"
            HOROVOD_BUILD_CUDA_CC_LIST="${HOROVOD_BUILD_CUDA_CC_LIST:-80,86,89,90}")
fi

# Horovod: skip the build when the installed one is the patched build for this TensorFlow with the wanted
# controllers ($VENV/horovod-build.json records what setup built; `ppg-cvae doctor` reports it).
HOROVOD_SDIST_SHA256=92a43f5a94c43907a56805bad15f19700c62ffc83b7ca483f9e104e229f67ef0
want_mpi=0
command -v mpicxx >/dev/null && want_mpi=1
patch_sha=$(sha256sum "$HOROVOD_PATCH" | cut -d' ' -f1)
record="$VENV/horovod-build.json"
horovod_ok() {
  "$PY" - "$want_mpi" "$gpu" "$record" "$patch_sha" <<'PYEOF' 2>/dev/null
import json, sys
import tensorflow as tf
import horovod.tensorflow as hvd
mpi, nccl, record, patch_sha = sys.argv[1] == "1", sys.argv[2] == "1", sys.argv[3], sys.argv[4]
built = json.load(open(record))
ok = built.get("patch_sha256") == patch_sha and built.get("tensorflow") == tf.__version__
sys.exit(0 if ok and hvd.gloo_built() and (not mpi or hvd.mpi_built()) and (not nccl or hvd.nccl_built()) else 1)
PYEOF
}
parts="TensorFlow + Gloo"
[ $want_mpi = 1 ] && parts+=" + MPI"
[ $gpu = 1 ] && parts+=" + NCCL"
if ! horovod_ok; then
  command -v patch >/dev/null || die "no 'patch' to apply $HOROVOD_PATCH; install it: apt-get install patch"
  echo "setup: building horovod==$HOROVOD_VERSION with $HOROVOD_PATCH ($parts; ~3-5 min, longer with NCCL)"
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$src" "horovod==$HOROVOD_VERSION" \
    || die "could not download the horovod==$HOROVOD_VERSION sdist from the package index"
  echo "$HOROVOD_SDIST_SHA256  $src/horovod-$HOROVOD_VERSION.tar.gz" | sha256sum -c --quiet - \
    || die "the downloaded horovod-$HOROVOD_VERSION.tar.gz is not the sdist $HOROVOD_PATCH was written for"
  tar -xzf "$src/horovod-$HOROVOD_VERSION.tar.gz" -C "$src"
  patch -s -p1 -d "$src/horovod-$HOROVOD_VERSION" < "$HOROVOD_PATCH" || die "$HOROVOD_PATCH does not apply"
  rm -f "$record"
  extra=("${nccl_env[@]}")
  [ "$want_mpi" = 1 ] && extra+=(HOROVOD_WITH_MPI=1)
  env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1 \
      "${extra[@]}" "$PY" -m pip install -q --no-cache-dir --no-build-isolation --force-reinstall --no-deps \
      "$src/horovod-$HOROVOD_VERSION" || die "Horovod build failed; see the pip output above"
  "$PY" -m pip install -q "horovod==$HOROVOD_VERSION"   # its pure-Python deps (cloudpickle, psutil, ...)
  "$PY" - "$record" "$HOROVOD_VERSION" "$(basename "$HOROVOD_PATCH")" "$patch_sha" "$parts" <<'PYEOF'
import json, os, sys
import tensorflow as tf
record, version, patch, sha, parts = sys.argv[1:]
with open(record + ".tmp", "w") as f:
    json.dump({"horovod": version, "source": "PyPI sdist", "patch": patch, "patch_sha256": sha,
               "tensorflow": tf.__version__, "built_with": parts}, f, indent=1)
os.replace(record + ".tmp", record)
PYEOF
  horovod_ok || die "Horovod installed but lacks some of $parts; see '$VENV/bin/horovodrun --check-build'"
fi
echo "setup: ready (Python $pyver, Horovod $HOROVOD_VERSION + $(basename "$HOROVOD_PATCH") with $parts; activate with 'source $VENV/bin/activate')"
