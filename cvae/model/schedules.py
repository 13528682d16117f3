"""What changes with training progress: the learning-rate warm-up (per step) and the KL warm-up (per epoch)."""
from __future__ import annotations

import math

import tensorflow as tf

from cvae.keras2 import keras


@keras.saving.register_keras_serializable(package="ppg_cvae")
class WarmupLR(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `start` to `target` over `warmup_steps` (Goyal et al. 2017), then constant at `target`,
    or with `decay_steps` a half cosine from `target` to 0 at step `decay_steps` (Loshchilov & Hutter 2017).
    `target` is a variable: an elastic run rescales it when the number of ranks changes."""

    def __init__(self, start: float, target: float, warmup_steps: int, decay_steps: int = 0):
        self.start, self.warmup_steps, self.decay_steps = start, warmup_steps, decay_steps
        self.target = tf.Variable(float(target), trainable=False, dtype=tf.float32, name="lr_target")

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        lr = self.start + (self.target - self.start) * tf.minimum(1.0, step / float(max(self.warmup_steps, 1)))
        if not self.decay_steps:
            return lr
        span = float(max(self.decay_steps - self.warmup_steps, 1))
        done = tf.clip_by_value((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        return lr * 0.5 * (1.0 + tf.cos(math.pi * done))

    def get_config(self):
        return {"start": self.start, "target": float(self.target.numpy()), "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps}


class KLWarmup(keras.callbacks.Callback):
    """beta ramps linearly over the first `warmup_epochs`: beta * (epoch + 1) / warmup_epochs, from beta/warmup in
    the first epoch to beta from epoch `warmup_epochs` on (the configured beta at once when 0)."""

    def __init__(self, beta: float, warmup_epochs: int):
        super().__init__()
        self.target, self.warmup = beta, warmup_epochs

    def beta_at(self, epoch: int) -> float:
        return self.target * (1.0 if self.warmup == 0 else min(1.0, (epoch + 1) / self.warmup))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.beta.assign(self.beta_at(epoch))
