"""Training callbacks: rank-0 validation with broadcast early stopping, the step watchdog, checkpoints, epoch
timing and TensorBoard (scalars, waveform images, hparams)."""
from __future__ import annotations

import logging
import os
import threading
import time

import horovod.tensorflow as hvd_tf
import horovod.tensorflow.keras as hvd
import numpy as np
import tensorflow as tf

from cvae.keras2 import keras
from cvae.plots import waveform_figure

log = logging.getLogger(__name__)
IMAGE_SECONDS = 3.0   # TensorBoard waveform images show this much of each signal, so single beats stay legible


class TrainState(tf.Module):
    """Progress that a resume must restore besides weights and optimizer: epoch and early-stopping state."""

    def __init__(self):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_val_loss")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")


def mean_losses(dataset, step, beta: float) -> dict[str, float]:
    """Exact mean of loss (recon + beta x kl), recon and kl over a whole dataset (weighted by batch size); `step`
    maps a batch to [recon, kl] (a tf.function made once, so evaluation does not retrace every epoch)."""
    sums = np.zeros(2)
    n = 0
    for batch, cond in dataset:
        b = int(batch.shape[0])
        sums += step(batch, cond).numpy() * b
        n += b
    rec, kl = sums / max(n, 1)
    return {"loss": rec + beta * kl, "recon": rec, "kl": kl}


class RankZeroValidation(keras.callbacks.Callback):
    """Rank 0 validates and decides early stopping; the numbers and the decision reach every rank. The validation
    loss weighs the KL by the configured beta, also while the KL warm-up trains with less, so that epochs compare
    and the best checkpoint is the best under the objective the run ends with."""

    def __init__(self, val_data, state: TrainState, patience: int, min_delta: float, agreement, beta: float):
        """`agreement` (StepAgreement): after a diverged step there is nothing to validate or decide."""
        super().__init__()
        self.val_data, self.state, self.patience, self.min_delta = val_data, state, patience, min_delta
        self.beta = beta
        self.agreement = agreement
        self.improved = False

    def on_train_begin(self, logs=None):
        self.step = tf.function(lambda s, c: tf.stack(self.model.losses_for(s, c)), reduce_retracing=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.agreement.diverged_at:
            return   # every rank knows
        packet = np.zeros(5)
        if hvd.rank() == 0:
            val = mean_losses(self.val_data, self.step, self.beta)
            self.improved = val["loss"] < float(self.state.best.numpy()) - self.min_delta
            if self.improved:
                self.state.best.assign(val["loss"])
                self.state.wait.assign(0)
            else:
                self.state.wait.assign_add(1)
            stop = int(self.state.wait.numpy()) > self.patience
            packet[:] = [val["loss"], val["recon"], val["kl"], float(stop), float(self.improved)]
        packet = hvd_tf.broadcast(tf.constant(packet), root_rank=0, name="validation_decision").numpy()
        logs.update(val_loss=packet[0], val_recon=packet[1], val_kl=packet[2])
        self.improved = bool(packet[4])
        self.state.epoch.assign(epoch + 1)
        if packet[3]:
            log.info("early stopping after epoch %d: no val_loss improvement > %g for %d epochs",
                     epoch + 1, self.min_delta, self.patience + 1)
            self.model.stop_training = True


def weights_finite(model: keras.Model) -> bool:
    """True when every weight of the model is finite (nothing else may be checkpointed or exported)."""
    return all(bool(np.isfinite(w.numpy()).all()) for w in model.weights if w.dtype.is_floating)


class StepWatchdog(keras.callbacks.Callback):
    """Ends this process when no step (or epoch boundary) finishes within the limit: a rank that hangs (stopped,
    deadlocked, lost its network) would otherwise hold every other rank in a collective forever; the launcher then
    sees a failed rank and stops the job. The limit scales with the job: `upper` until the first epoch of this
    process (with rank 0's validation and checkpoint) is over, then FACTOR times the longest gap between two
    heartbeats seen so far (a step, an epoch boundary), never below `floor` nor above `upper`."""

    EXIT_CODE = 3
    FACTOR = 10.0

    def __init__(self, upper: float, floor: float):
        super().__init__()
        self.upper, self.floor = upper, floor
        self.slowest = 0.0
        self.epochs_begun = 0
        self.beat = time.monotonic()
        self.running = False

    @property
    def limit(self) -> float:
        if self.epochs_begun < 2:
            return self.upper
        return min(self.upper, max(self.floor, self.FACTOR * self.slowest))

    def _watch(self):
        while self.running:
            time.sleep(min(1.0, self.floor / 10))
            idle, limit = time.monotonic() - self.beat, self.limit
            if self.running and idle > limit:
                log.error("no training step finished on this rank for %.0f s (limit %.0f s: %g x the slowest step or "
                          "epoch boundary so far, %.2f s, within train.step_timeout_floor_s=%g and "
                          "train.step_timeout_s=%g): another rank is hung or a collective is stuck; ending the job",
                          idle, limit, self.FACTOR, self.slowest, self.floor, self.upper)
                logging.shutdown()
                os._exit(self.EXIT_CODE)

    def _heartbeat(self, *args, **kwargs):
        now = time.monotonic()
        self.slowest = max(self.slowest, now - self.beat)
        self.beat = now

    def on_train_begin(self, logs=None):
        self.running = True
        self.beat = time.monotonic()
        threading.Thread(target=self._watch, name="step-watchdog", daemon=True).start()

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs_begun += 1
        self._heartbeat()

    on_train_batch_end = on_epoch_end = _heartbeat

    def on_train_end(self, logs=None):
        self.running = False


class Checkpointer(keras.callbacks.Callback):
    """Rank 0: keep the last K checkpoints (weights, optimizer, epoch, early-stopping state) and the best."""

    def __init__(self, last: tf.train.CheckpointManager, best: tf.train.CheckpointManager,
                 validation: RankZeroValidation):
        super().__init__()
        self.last, self.best, self.validation = last, best, validation

    def on_epoch_end(self, epoch, logs=None):
        if not weights_finite(self.model):
            return   # a diverged step; the trainer reports it and the last good checkpoint
        step = self.model.optimizer.iterations   # numbered by optimizer step: unique, also mid-epoch
        self.last.save(checkpoint_number=step)
        if self.validation.improved:
            self.best.save(checkpoint_number=step)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, kept in `seconds` (TensorBoardLogger reads the last one)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.t0)


class TensorBoardLogger(keras.callbacks.Callback):
    """Rank 0: train/val loss terms, LR, signals/s, epoch and step time, waveform images, hparams."""

    def __init__(self, logdir: str, global_batch: int, steps: int, fs: float, image_every: int,
                 sample_batch: tuple, age_draws: dict | None, hparams: dict, timer: EpochTimer):
        """`age_draws` (images.age_encodings): validation signals near each image age, decoded at that age;
        `timer` must run before this logger at epoch end (the trainer lists it first)."""
        super().__init__()
        self.timer = timer
        self.writer = tf.summary.create_file_writer(logdir)
        self.global_batch, self.steps, self.fs, self.image_every = global_batch, steps, fs, image_every
        self.sample_batch, self.age_draws, self.hparams = sample_batch, age_draws, hparams

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp
        with self.writer.as_default():
            hp.hparams(self.hparams, trial_id="run")

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.timer.seconds[-1]
        lr = self.model.optimizer.learning_rate
        lr = float(lr(self.model.optimizer.iterations) if callable(lr) else lr)
        with self.writer.as_default(step=epoch + 1):
            for term in ("loss", "recon", "kl"):
                tf.summary.scalar(f"train/{term}", logs[term])
                if f"val_{term}" in logs:
                    tf.summary.scalar(f"val/{term}", logs[f"val_{term}"])
            tf.summary.scalar("opt/learning_rate", lr)
            tf.summary.scalar("opt/beta", float(self.model.beta.numpy()))
            tf.summary.scalar("perf/signals_per_s", self.global_batch * self.steps / seconds)
            tf.summary.scalar("perf/epoch_time_s", seconds)
            tf.summary.scalar("perf/step_time_ms", 1000 * seconds / self.steps)
            if "privacy_epsilon" in logs:
                tf.summary.scalar("privacy/epsilon", logs["privacy_epsilon"])
            if self.image_every and (epoch + 1) % self.image_every == 0 or epoch == 0:
                self._images()
        self.writer.flush()

    def _images(self):
        signal, cond = self.sample_batch
        recon = self.model([signal, cond]).numpy()
        pairs = np.stack([signal.numpy(), recon], axis=1).reshape(-1, signal.shape[1])
        titles = [f"{kind} #{i}" for i in range(len(signal)) for kind in ("real", "reconstruction")]
        tf.summary.image("reconstructions", _png_tensor(waveform_figure(pairs, titles, self.fs, seconds=IMAGE_SECONDS)))
        if self.age_draws is not None:
            d = self.age_draws
            z_mean, _ = self.model.encoder([d["signal"], d["cond"]], training=False)
            gen = self.model.decoder([z_mean, d["target"]], training=False).numpy()
            titles = [f"age {a:g}: decoded from the encoding of a validation signal aged {s:.0f} (as generate draws z)"
                      for a, s in zip(d["ages"], d["source_ages"])]
            png = waveform_figure(gen, titles, self.fs, seconds=IMAGE_SECONDS)
            tf.summary.image("generated_by_age", _png_tensor(png))


def _png_tensor(png: bytes):
    return tf.expand_dims(tf.io.decode_png(png, channels=4), 0)
