"""The Horovod job this process is part of: init, the launcher check, one GPU (or a CPU thread budget) per rank,
and the collectives the trainer needs beyond the optimizer's."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import horovod.tensorflow as hvd_tf
import horovod.tensorflow.keras as hvd
import numpy as np
import tensorflow as tf

from data_prep.common import UserError

# Variables through which launchers tell a process how many peers it has.
WORLD_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS", "HOROVOD_SIZE")


@dataclass
class Ranks:
    rank: int
    size: int
    device: str      # "GPU k" or "CPU xN threads"
    local_size: int = 1   # ranks on this host

    @property
    def on_cpu(self) -> bool:
        return self.device.startswith("CPU")


def launcher_world_size(env: dict) -> int:
    """The number of processes a launcher says it started (1 when none says so)."""
    return max([int(env[v]) for v in WORLD_SIZE_VARS if env.get(v, "").isdigit()] or [1])


def init(threads_per_rank: int) -> Ranks:
    """hvd.init(), refuse a launcher whose processes Horovod cannot see, and pin this rank's device."""
    hvd.init()
    started = launcher_world_size(dict(os.environ))
    if hvd.size() == 1 and started > 1:
        raise UserError(f"the launcher started {started} processes but Horovod sees 1: its MPI/Gloo does not match "
                        "Horovod's build; use horovodrun, or srun --mpi=pmix / mpirun with the MPI Horovod was "
                        "built against (see 'ppg-cvae doctor')")
    return Ranks(hvd.rank(), hvd.size(), pin_device(threads_per_rank), hvd.local_size())


def pin_device(threads_per_rank: int) -> str:
    """One GPU per local rank with memory growth; on CPU, a fixed number of threads per rank."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        gpu = gpus[hvd.local_rank() % len(gpus)]
        tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpu, "GPU")
        return f"GPU {hvd.local_rank() % len(gpus)}"
    if threads_per_rank:
        tf.config.threading.set_intra_op_parallelism_threads(threads_per_rank)
        tf.config.threading.set_inter_op_parallelism_threads(threads_per_rank)
    return f"CPU x{threads_per_rank or 'auto'} threads"


def stop_all_if(error: Exception | None, what: str) -> None:
    """A refusal on any rank (usually rank 0's) stops every rank: nobody goes on alone into a collective."""
    if hvd_tf.allreduce(tf.constant(float(error is not None)), op=hvd_tf.Max, name=what).numpy() > 0:
        raise error or UserError(f"another rank refused to go on ({what}; see its message)")


def max_allreduce(flags):
    return hvd_tf.allreduce(flags, op=hvd_tf.Max, name="step_flags")


def min_allreduce(count: int) -> int:
    """The smallest of an integer over the ranks."""
    return int(hvd_tf.allreduce(tf.constant(count, tf.int64), op=hvd_tf.Min, name="min_count").numpy())


def mean_allreduce(value):
    """The mean of a scalar over the ranks (the calibrated likelihood's batch statistic)."""
    return hvd_tf.allreduce(value, op=hvd_tf.Average, name="calibrated_mean_sse")


def grouped_mean_allreduce(tensors: list) -> list:
    """Each tensor's mean over the ranks, in one grouped collective (DP-SGD's noisy gradients)."""
    return hvd_tf.grouped_allreduce(tensors, op=hvd_tf.Average, name="private_gradients")


def weights_digest(model) -> str:
    """sha256 over the trainable weights: equal on every rank when gradients really were averaged."""
    digest = hashlib.sha256()
    for w in model.trainable_weights:
        digest.update(np.ascontiguousarray(w.numpy()).tobytes())
    return digest.hexdigest()
