"""Differentially private training with the subject as the privacy unit (DP-SGD, Abadi et al. 2016).

Every global step takes distinct subjects, one window each (cvae.training.input_pipeline in private mode). Each window's
gradient is clipped to L2 norm `clip_norm` over all weights; each rank adds Gaussian noise of standard deviation
noise_multiplier x clip_norm / sqrt(ranks) to the sum of its clipped gradients, so that the sum over all ranks
carries that noise exactly once (noise_multiplier x clip_norm); the update is the noisy sum over the global batch.
The privacy spent is accounted with dp-accounting's privacy-loss-distribution accountant.
"""
from __future__ import annotations

import logging
import math

import tensorflow as tf

from cvae.keras2 import keras
from data_prep.common import UserError

log = logging.getLogger(__name__)

SAMPLING_NOTE = ("accounted as Poisson sampling of subjects at rate global batch / training subjects; training "
                 "draws shuffled batches of distinct subjects, each once per epoch, one window each")


def _accountant(grid: float):
    """A PLD accountant whose privacy losses are discretized to `grid` (pessimistically: a coarser grid gives a
    larger epsilon)."""
    from dp_accounting.pld import pld_privacy_accountant

    return pld_privacy_accountant.PLDAccountant(value_discretization_interval=grid)


def _training_event(noise_multiplier: float, sample_rate: float, steps: int):
    """`steps` Poisson-sampled Gaussian mechanisms as one dp-accounting event."""
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)), steps)


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, grid: float = 1e-4) -> float:
    """The epsilon at `delta` of `steps` Poisson-sampled Gaussian mechanisms (PLD accountant on `grid`,
    dp-accounting's default)."""
    if steps == 0:
        return 0.0
    return float(_accountant(grid).compose(_training_event(noise_multiplier, sample_rate, steps)).get_epsilon(delta))


def noise_for_epsilon(target: float, sample_rate: float, steps: int, delta: float) -> float:
    """The smallest noise multiplier (at least 0.1) whose `steps` Poisson-sampled Gaussian mechanisms spend at most
    `target` epsilon at `delta`: dp-accounting's calibration on a coarser PLD grid than `epsilon`'s default, whose
    pessimistic estimate bounds the finer one from above."""
    import dp_accounting

    if steps <= 0:
        raise UserError("train.privacy.target_epsilon needs at least one training step; raise train.epochs")
    grid = min(1e-2, target / 1000)
    low, high = 0.1, 1e4
    if epsilon(low, sample_rate, steps, delta, grid) <= target:
        return low
    sigma = dp_accounting.calibrate_dp_mechanism(
        lambda: _accountant(grid), lambda noise: _training_event(noise, sample_rate, steps), target, delta,
        dp_accounting.ExplicitBracketInterval(low, high), tol=1e-4)
    while epsilon(sigma, sample_rate, steps, delta, grid) > target:   # Brent's method stops within its tolerance
        sigma *= 1.0001                                               # on either side of the target
    return float(sigma)


def clipped_sum(per_example: list[tf.Tensor], clip_norm: float) -> list[tf.Tensor]:
    """The sum over examples of each example's gradient (a list over weights of [examples, ...] tensors) scaled
    to L2 norm at most `clip_norm` over all weights together."""
    squares = tf.add_n([tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1) for g in per_example])
    scale = tf.minimum(1.0, clip_norm / tf.maximum(tf.sqrt(squares), 1e-12))
    return [tf.tensordot(scale, g, axes=1) for g in per_example]


def noisy_share(sums: list[tf.Tensor], clip_norm: float, noise_multiplier: float, global_batch: int, ranks: int,
                seed: tf.Tensor) -> list[tf.Tensor]:
    """This rank's share of the update: (its clipped sum + its part of the noise) x ranks / global batch, so that
    the average over the ranks (Horovod's allreduce) is (clipped sum of the global batch + N(0, (noise_multiplier
    x clip_norm)^2)) / global batch. `seed` ([2] int64) must differ between ranks and steps."""
    std = noise_multiplier * clip_norm / math.sqrt(ranks)
    out = []
    for i, s in enumerate(sums):
        noise = tf.random.stateless_normal(tf.shape(s), seed=tf.random.experimental.stateless_fold_in(seed, i),
                                           dtype=s.dtype)
        out.append((s + std * noise) * (ranks / global_batch))
    return out


class PrivateStep:
    """One DP-SGD update of a CVAE (its train_step calls `step` when the model is private): per-example gradients
    in chunks of `chunk` windows, clipped and summed, this rank's noise share added, averaged over the ranks by
    `allreduce` (a list of tensors -> their means over the ranks) and applied by the optimizer (whose own
    apply_gradients does not allreduce). `seed` must be secret and differ between ranks: whoever knows it can
    subtract the noise."""

    def __init__(self, clip_norm: float, noise_multiplier: float, global_batch: int, ranks: int, seed: int,
                 allreduce, chunk: int = 128):
        self.clip_norm, self.noise_multiplier, self.chunk = clip_norm, noise_multiplier, chunk
        self.global_batch, self.ranks, self.seed, self.allreduce = global_batch, ranks, seed, allreduce

    def gradients(self, model, signal, cond) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
        """(this step's averaged noisy gradients, mean reconstruction term, mean KL) for a batch of windows of
        distinct subjects."""
        weights = model.trainable_weights
        eps = model.latent_noise([tf.shape(signal)[0], model.encoder.outputs[0].shape[-1]])

        def one(args):
            x, c, e = args
            with tf.GradientTape() as tape:
                rec, kl = model.losses_for(x[None], c[None], training=True, eps=e[None])
                loss = rec + model.beta * kl
            return rec, kl, tape.gradient(loss, weights)

        sums, recs, kls = None, [], []
        for start in range(0, signal.shape[0], self.chunk):
            part = slice(start, start + self.chunk)
            rec, kl, per_example = tf.vectorized_map(one, (signal[part], cond[part], eps[part]))
            clipped = clipped_sum(per_example, self.clip_norm)
            sums = clipped if sums is None else [a + b for a, b in zip(sums, clipped)]
            recs.append(rec)
            kls.append(kl)
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(model.optimizer.iterations, tf.int64)])
        shares = noisy_share(sums, self.clip_norm, self.noise_multiplier, self.global_batch, self.ranks, seed)
        return self.allreduce(shares), tf.reduce_mean(tf.concat(recs, 0)), tf.reduce_mean(tf.concat(kls, 0))

    def step(self, model, signal, cond) -> tuple[tf.Tensor, tf.Tensor]:
        """Apply one update; returns (mean reconstruction term, mean KL) of the batch."""
        grads, rec, kl = self.gradients(model, signal, cond)
        model.optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return rec, kl


def public_view(manifest):
    """The manifest as private training may use it: each numeric label's statistics from its plausible range
    (data_prep.validate.LABEL_RANGES; mean its middle, std that of a uniform over it), not from the training
    split, and each categorical value's training count replaced by 1 (which values exist stays)."""
    import dataclasses

    from data_prep.manifest import LabelStats
    from data_prep.validate import LABEL_RANGES

    labels = {}
    for name in manifest.labels:
        lo, hi = LABEL_RANGES[name]
        labels[name] = LabelStats((lo + hi) / 2, (hi - lo) / math.sqrt(12), lo, hi)
    return dataclasses.replace(manifest, labels=labels,
                               categories={c: dict.fromkeys(v, 1) for c, v in manifest.categories.items()})


def sampling(global_batch: int, subjects: int, delta: float) -> float:
    """The sampling rate a subject is accounted at (refused unless delta < 1 / subjects: a larger delta allows
    releasing one subject's data whole)."""
    if delta >= 1.0 / subjects:
        raise UserError(f"train.privacy.delta {delta:g} is not below 1 / {subjects} training subjects; lower it "
                        f"(e.g. {10 ** math.floor(math.log10(0.1 / subjects)):g})")
    return min(1.0, global_batch / subjects)


class PrivacyLedger(keras.callbacks.Callback):
    """After every epoch: the epsilon spent so far at the configured delta, into the epoch's logs (TensorBoard's
    privacy/epsilon) and, on rank 0, the log."""

    def __init__(self, noise_multiplier: float, sample_rate: float, delta: float, rank: int):
        super().__init__()
        self.noise_multiplier, self.sample_rate, self.delta, self.rank = noise_multiplier, sample_rate, delta, rank
        self.epsilon, self.steps = 0.0, 0

    def on_epoch_end(self, epoch, logs=None):
        self.steps = int(self.model.optimizer.iterations.numpy())
        self.epsilon = epsilon(self.noise_multiplier, self.sample_rate, self.steps, self.delta)
        if logs is not None:
            logs["privacy_epsilon"] = self.epsilon
        if self.rank == 0:
            log.info("privacy: epsilon %.3f at delta %g after %d steps (%s)", self.epsilon,
                                             self.delta, self.steps, SAMPLING_NOTE)

    def record(self, clip_norm: float) -> dict:
        """What meta.json and the report carry about the guarantee."""
        return {"epsilon": self.epsilon, "delta": self.delta, "noise_multiplier": self.noise_multiplier,
                "clip_norm": clip_norm, "steps": self.steps, "sample_rate": self.sample_rate, "unit": "subject",
                "accounting": "dp-accounting PLD", "sampling": SAMPLING_NOTE}
