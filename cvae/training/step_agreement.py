"""Stopping every rank on the same step: a preemption signal (SIGTERM/SIGUSR1, e.g. from Slurm) or a non-finite
loss on any rank. The flags are max-allreduced inside each training step (no extra round trip), through a hook
the model calls with its loss; the model knows nothing else of it."""
from __future__ import annotations

import signal

import tensorflow as tf

from cvae.keras2 import keras

EXIT_PREEMPTED = 75   # a checkpoint was written after SIGTERM/SIGUSR1; rerun with --resume to continue


class StepAgreement(keras.callbacks.Callback):
    """Installs the signal handlers; `hook(loss)` runs inside train_step; after each step every rank reads the
    same agreed flags. `preempted` and `diverged_at` (epoch, step in epoch, global step; 1-based) say why it
    stopped."""

    def __init__(self, sync=None):
        """`sync` combines a flag vector across ranks (e.g. a Horovod max-allreduce); None on one process."""
        super().__init__()
        self.sync = sync
        self.requested = tf.Variable(0.0, trainable=False)
        self.agreed = tf.Variable([0.0, 0.0], trainable=False)   # [stop requested, loss not finite]
        self.signalled = False
        self.preempted = False
        self.diverged_at: tuple[int, int, int] | None = None
        self.epoch = 0
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        self.signalled = True

    def hook(self, loss):
        flags = tf.stack([self.requested, tf.cast(tf.logical_not(tf.math.is_finite(loss)), tf.float32)])
        self.agreed.assign(self.sync(flags) if self.sync else flags)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.signalled:
            self.requested.assign(1.0)

    def on_train_batch_end(self, batch, logs=None):
        stop, diverged = self.agreed.numpy()
        if diverged and self.diverged_at is None:
            self.diverged_at = (self.epoch + 1, batch + 1, int(self.model.optimizer.iterations.numpy()))
        elif stop:
            self.preempted = True
        self.model.stop_training = self.model.stop_training or bool(stop or diverged)
