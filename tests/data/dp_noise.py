"""Run under Horovod (any number of ranks): one DP-SGD gradient (cvae.training.privacy.PrivateStep) of the smoke model
on a global batch of G random windows, each rank taking G / ranks, with a clipping norm so small that the gradient is
the noise alone. Rank 0 writes the averaged gradient to OUT.npy; every rank prints the sha256 of its copy.

    python dp_noise.py OUT G NOISE_MULTIPLIER CLIP_NORM
"""
import hashlib
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import horovod.tensorflow.keras as hvd  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cvae.config import load_config  # noqa: E402
from cvae.keras2 import keras  # noqa: E402
from cvae.model.network import CVAE  # noqa: E402
from cvae.training import distributed  # noqa: E402
from cvae.training.privacy import PrivateStep  # noqa: E402


def main(out: str, global_batch: int, noise_multiplier: float, clip_norm: float) -> None:
    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "smoke.yaml"))
    length, per = cfg.data.signal_length, global_batch // hvd.size()
    rng = np.random.default_rng(hvd.rank())
    x = tf.constant(0.5 * rng.standard_normal((per, length)), tf.float32)
    cond = tf.constant(rng.standard_normal((per, 1)), tf.float32)
    keras.utils.set_random_seed(7)
    model = CVAE(cfg.model, length, 1)
    model.build([(None, length), (None, 1)])
    model.optimizer = keras.optimizers.Adam(1e-3)
    step = PrivateStep(clip_norm, noise_multiplier, global_batch, hvd.size(), int.from_bytes(os.urandom(7), "big"),
                       distributed.grouped_mean_allreduce, chunk=4)
    grads, rec, kl = step.gradients(model, x, cond)
    flat = np.concatenate([g.numpy().ravel() for g in grads])
    print(f"rank {hvd.rank()} digest {hashlib.sha256(flat.tobytes()).hexdigest()} rec {float(rec):.3f}", flush=True)
    if hvd.rank() == 0:
        np.save(out, flat)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
