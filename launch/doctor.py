"""`ppg-cvae doctor`: versions, Horovod build (frameworks, controllers, ops), devices, what is missing."""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
from pathlib import Path

PATCH = Path(__file__).with_name("horovod-0.28.1.patch")


def report() -> tuple[list[str], list[str]]:
    """Lines to print and the list of missing essentials."""
    lines, missing, gpus = [f"python      {platform.python_version()}"], [], []
    try:
        import numpy
        import tensorflow as tf
        lines += [f"tensorflow  {tf.__version__}", f"numpy       {numpy.__version__}"]
        gpus = tf.config.list_physical_devices("GPU")
        lines.append(f"GPUs        {len(gpus)}" + (f" ({', '.join(g.name for g in gpus)})" if gpus else " (CPU only)"))
        if gpus:   # what cvae.training.distributed.pin_device does: one GPU per local rank
            lines.append("  pinning: " + ", ".join(f"local rank {r} -> GPU {r}" for r in range(len(gpus)))
                         + f"; rank k on a node uses GPU k mod {len(gpus)}")
    except ImportError as exc:
        missing.append(f"tensorflow ({exc}); run 'make setup'")
    try:
        import cvae.keras2
        lines.append(f"keras       tf-keras {cvae.keras2.keras.__version__} (Keras 2, as tf.keras)")
    except ImportError as exc:
        missing.append(f"Keras 2 as tf.keras ({exc}); run 'make setup'")
    try:
        import horovod
        import horovod.tensorflow as hvd
        lines.append(f"horovod     {horovod.__version__}")
        lines.append("  frameworks: TensorFlow")
        controllers = [name for name, ok in (("Gloo", hvd.gloo_built()), ("MPI", hvd.mpi_built())) if ok]
        ops = [name for name, ok in (("NCCL", hvd.nccl_built()), ("Gloo", hvd.gloo_built()),
                                     ("MPI", hvd.mpi_built())) if ok]
        lines.append(f"  controllers: {', '.join(controllers) or 'none'}")
        lines.append(f"  tensor ops: {', '.join(ops) or 'none'}")
        nccl = hvd.nccl_built()
        lines.append(f"  NCCL: {nccl // 10000}.{nccl // 100 % 100}.{nccl % 100}" if nccl else "  NCCL: not built")
        build, problem = horovod_build()
        lines.append(f"  build: {build}")
        if problem:
            missing.append(problem)
        if not hvd.gloo_built():
            missing.append("Horovod without Gloo; rebuild with 'make setup'")
        if gpus and not nccl:
            missing.append("GPUs but Horovod without NCCL: gradients would cross through the CPU; rebuild with "
                           "'make setup' (PPG_CVAE_GPU=1)")
    except ImportError as exc:
        missing.append(f"horovod with TensorFlow ({exc}); run 'make setup'")
    for tool in ("horovodrun", "mpirun", "sbatch", "tensorboard"):
        beside = Path(sys.executable).parent / tool   # the venv's own, as the launchers use it
        found = str(beside) if beside.exists() else shutil.which(tool)
        lines.append(f"{tool:<11} {found or 'not found'}")
    return lines, missing


def horovod_build() -> tuple[str, str | None]:
    """What `make setup` recorded of the Horovod build in this environment ($VENV/horovod-build.json), and whether it
    runs with this project's patch: (description, problem or None)."""
    import horovod.tensorflow.keras.callbacks as hvd_callbacks
    import tf_keras
    record_path = Path(sys.prefix) / "horovod-build.json"
    try:
        record = json.loads(record_path.read_text())
        built = (f"{record['source']} + {record['patch']} (sha256 {record['patch_sha256'][:12]}), against "
                 f"TensorFlow {record['tensorflow']}, with {record['built_with']}")
    except (OSError, ValueError, KeyError, TypeError):
        return f"no record in {record_path} (not built by 'make setup')", \
            "Horovod not built by 'make setup' with its patch; run 'make setup'"
    if record["patch_sha256"] != hashlib.sha256(PATCH.read_bytes()).hexdigest():
        return built, f"Horovod was built with another version of {PATCH.name}; run 'make setup' to rebuild it"
    if hvd_callbacks.K.get_value is not tf_keras.backend.get_value:
        return built, "Horovod's Keras callbacks do not use Keras 2 (the patch is not in effect); run 'make setup'"
    return built, None
