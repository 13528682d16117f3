"""Run under Horovod (any number of ranks): K optimizer steps of the CVAE on the first G training records of a data
set, each rank taking its consecutive G / ranks of them, through the trainer's Horovod-wrapped optimizer.minimize.
Rank 0 writes the global loss of each step and the final weights to OUT.npz.

    python global_batch_steps.py DATA OUT LIKELIHOOD G K

The training loss with z = z_mean (the sampling noise's draws depend on the rank by design and are left out), and
the trainer's cross-rank mean for the calibrated sigma, so one rank at batch G and R ranks at G / R compute the same
updates when data parallelism is exact.
"""
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import horovod.tensorflow as hvd_tf  # noqa: E402
import horovod.tensorflow.keras as hvd  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cvae.config import load_config  # noqa: E402
from cvae.keras2 import keras  # noqa: E402
from cvae.model.conditions import Conditions  # noqa: E402
from cvae.model.network import CVAE  # noqa: E402
from cvae.training import distributed  # noqa: E402
from data_prep.manifest import load_manifest, shard_paths  # noqa: E402
from data_prep.shards import read_arrays  # noqa: E402


def main(data: str, out: str, likelihood: str, global_batch: int, steps: int) -> None:
    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "smoke.yaml"),
                      [f"model.likelihood={likelihood}"])
    manifest = load_manifest(data)
    x, labels = read_arrays(shard_paths(data, manifest, "train"), ["age"], manifest.signal_length,
                            manifest.compression)
    cond = Conditions.from_manifest(manifest, ["age"]).encode(labels)
    per = global_batch // hvd.size()
    mine = slice(hvd.rank() * per, (hvd.rank() + 1) * per)
    keras.utils.set_random_seed(7)
    model = CVAE(cfg.model, manifest.signal_length, 1, rank_mean=distributed.mean_allreduce)
    model.sample_z = lambda z_mean, z_log_var, eps=None: z_mean
    model.build([(None, manifest.signal_length), (None, 1)])
    optimizer = hvd.DistributedOptimizer(keras.optimizers.Adam(1e-3))
    hvd_tf.broadcast_variables(model.variables, root_rank=0)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            rec, kl = model.losses_for(tf.constant(x[mine]), tf.constant(cond[mine]), training=True)
            loss = rec + model.beta * kl
        optimizer.minimize(loss, model.trainable_weights, tape=tape)
        losses.append(float(hvd_tf.allreduce(loss, op=hvd_tf.Average)))
    if hvd.rank() == 0:
        np.savez(out, losses=np.array(losses), weights=np.concatenate([w.numpy().ravel()
                                                                        for w in model.trainable_weights]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
