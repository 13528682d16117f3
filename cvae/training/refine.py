"""Adversarial refinement of the decoder, the phase after the ELBO (the second phase of RAVE, Caillon and Esling
2021): the encoder is kept as trained; the decoder renders each training window from a z drawn from its posterior,
and learns from a critic's hinge loss, the L1 distance of the critic's features (rendered against real), the
multi-resolution STFT distance and the summed squared error to that window. The critic (cvae.model.critic) is
trained beside it on the same training windows; it is its own network, never one of the report's judges, and
never sees validation or test data. Both networks update through Horovod's DistributedOptimizer, so every rank
holds the same weights."""
from __future__ import annotations

import logging

import horovod.tensorflow as hvd_tf
import horovod.tensorflow.keras as hvd
import tensorflow as tf

from cvae.keras2 import keras
from cvae.model.critic import build_critic, split_outputs
from cvae.model.network import CVAE
from cvae.model.spectral import mean_log_spectrum, stft_distance

log = logging.getLogger(__name__)
VALIDATION_BATCHES = 16   # of the validation batches (256 windows each) the two measures read
TERMS = ("adversarial", "feature_matching", "spectral", "reconstruction", "critic")


def generator_terms(real: list, fake: list, scales: int) -> tuple:
    """The decoder's hinge loss (its renderings scored as real) and feature matching (mean L1 of each critic
    layer's activations, real against rendered), each averaged over the scales."""
    adversarial, matching = 0.0, 0.0
    for (real_features, _), (fake_features, fake_logits) in zip(split_outputs(real, scales),
                                                                 split_outputs(fake, scales)):
        adversarial += tf.reduce_mean(tf.nn.relu(1.0 - fake_logits))
        matching += tf.add_n([tf.reduce_mean(tf.abs(tf.stop_gradient(r) - f))
                              for r, f in zip(real_features, fake_features)]) / len(real_features)
    return adversarial / scales, matching / scales


def critic_loss(real: list, fake: list, scales: int):
    """The critic's hinge loss, averaged over the scales."""
    return tf.add_n([tf.reduce_mean(tf.nn.relu(1.0 - r)) + tf.reduce_mean(tf.nn.relu(1.0 + f))
                     for (_, r), (_, f) in zip(split_outputs(real, scales), split_outputs(fake, scales))]) / scales


class Refiner(keras.Model):
    """Trains `vae`'s decoder against a critic; `epoch` counts the refinement epochs done (checkpointed)."""

    def __init__(self, vae: CVAE, refine, length: int, step_hooks=(), **kwargs):
        """`refine`: train.refine (cvae.training.settings.RefineConfig)."""
        super().__init__(**kwargs)
        self.vae = vae
        self.weights_of = {"adversarial": refine.adversarial, "feature_matching": refine.feature_matching,
                           "spectral": refine.spectral, "reconstruction": refine.reconstruction}
        self.scales = refine.critic_scales
        self.critic = build_critic(length, refine.critic_scales, refine.critic_width)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="refine_epoch")
        self.best_gap = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="refine_best_gap")
        self.step_hooks = list(step_hooks)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss",) + TERMS}

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def updates(self):
        """Updates so far, the ELBO phase's and the refinement's (checkpoints are numbered by it)."""
        return self.vae.optimizer.iterations + self.optimizer.iterations

    def render(self, signal, cond, training: bool):
        """The decoder's rendering of each window from z ~ q(z | window, condition) (the frozen encoder's)."""
        z_mean, z_log_var = self.vae.encoder([signal, cond], training=False)
        return self.vae.decoder([self.vae.sample_z(z_mean, z_log_var), cond], training=training)

    def train_step(self, data):
        """One update of each network from one critic pass over the real and rendered windows together: the
        decoder's loss differentiates through the critic to the renderings, the critic's loss to its own weights
        (both see the critic as it was before this step's update)."""
        signal, cond = data
        with tf.GradientTape(persistent=True) as tape:
            fake = self.render(signal, cond, training=True)
            both = self.critic(tf.concat([signal, fake], axis=0), training=True)
            real_out, fake_out = zip(*[tf.split(o, 2, axis=0) for o in both])
            adversarial, matching = generator_terms(list(real_out), list(fake_out), self.scales)
            terms = {"adversarial": adversarial, "feature_matching": matching,
                     "spectral": stft_distance(signal, fake),
                     "reconstruction": tf.reduce_mean(tf.reduce_sum(tf.square(signal - fake), axis=1))}
            loss = tf.add_n([self.weights_of[k] * v for k, v in terms.items()])
            terms["critic"] = critic_loss(list(real_out), list(fake_out), self.scales)
        self.optimizer.minimize(loss, self.vae.decoder.trainable_weights, tape=tape)
        self.critic_optimizer.minimize(terms["critic"], self.critic.trainable_weights, tape=tape)
        del tape
        for hook in self.step_hooks:
            hook(loss + terms["critic"])
        for name, value in {"loss": loss, **terms}.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}


def build_refiner(vae: CVAE, refine, length: int, lr: float, step_hooks=()) -> Refiner:
    """The refiner with a DistributedOptimizer for the decoder (its compiled optimizer) and one for the critic, both
    Adam(lr, 0.5, 0.9) with their slots built (so a checkpoint restores them)."""
    refiner = Refiner(vae, refine, length, step_hooks)

    def adam(name):
        return hvd.DistributedOptimizer(keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9), name=name)
    refiner.compile(optimizer=adam("RefineDecoder"))
    refiner.critic_optimizer = adam("RefineCritic")
    refiner.optimizer.build(vae.decoder.trainable_variables)
    refiner.critic_optimizer.build(refiner.critic.trainable_variables)
    return refiner


def checkpoint_objects(refiner: Refiner) -> dict:
    """What a checkpoint holds of the refinement besides the VAE: the critic, both optimizers, the epoch and the
    best validation spectrum gap so far."""
    return {"critic": refiner.critic, "refine_decoder_optimizer": refiner.optimizer,
            "refine_critic_optimizer": refiner.critic_optimizer, "refine_epoch": refiner.epoch,
            "refine_best_gap": refiner.best_gap}


def start_from_best(vae: CVAE, best_checkpoint: str | None, rank: int) -> None:
    """Rank 0 restores the ELBO phase's best weights and broadcasts them: the refinement starts from the model the
    run would otherwise export, on every rank."""
    if rank == 0 and best_checkpoint:
        tf.train.Checkpoint(model=vae).restore(best_checkpoint).expect_partial()
    hvd_tf.broadcast_variables(vae.variables, root_rank=0)


class RefineEpochs(keras.callbacks.Callback):
    """Counts refinement epochs; on rank 0 after each: a checkpoint, and two validation measures that see detail
    the ELBO averages away, logged to TensorBoard with the training terms: the STFT distance of the validation
    windows (up to VALIDATION_BATCHES batches) to their renderings from z_mean, and the spectrum gap, the mean
    absolute difference of the renderings' and the windows' mean log spectra (the linear judge's features). The
    epoch of the smallest gap so far is also kept in `best` (train.refine.select=spectrum exports it)."""

    def __init__(self, refiner: Refiner, val_data, last: tf.train.CheckpointManager | None, logdir: str | None,
                 vae_epochs: int, best: tf.train.CheckpointManager | None):
        super().__init__()
        self.refiner, self.val_data, self.last, self.vae_epochs, self.best = refiner, val_data, last, vae_epochs, best
        self.writer = tf.summary.create_file_writer(logdir) if logdir else None

    def on_train_begin(self, logs=None):
        vae = self.refiner.vae
        self.render = tf.function(lambda s, c: vae.decoder([vae.encoder([s, c])[0], c]), reduce_retracing=True)

    def on_epoch_end(self, epoch, logs=None):
        self.refiner.epoch.assign(epoch + 1)
        if self.last is None:
            return
        real, rendered = [], []
        for s, c in self.val_data.take(VALIDATION_BATCHES):
            real.append(s)
            rendered.append(self.render(s, c))
        real, rendered = tf.concat(real, 0), tf.concat(rendered, 0)
        logs["val_spectral"] = float(stft_distance(real, rendered))
        logs["val_spectrum_gap"] = float(tf.reduce_mean(tf.abs(mean_log_spectrum(real) -
                                                               mean_log_spectrum(rendered))))
        if logs["val_spectrum_gap"] < float(self.refiner.best_gap.numpy()):
            self.refiner.best_gap.assign(logs["val_spectrum_gap"])
            self.best.save(checkpoint_number=self.refiner.updates)
        self.last.save(checkpoint_number=self.refiner.updates)
        with self.writer.as_default(step=self.vae_epochs + epoch + 1):
            for name in ("loss",) + TERMS:
                tf.summary.scalar(f"refine/{name}", logs[name])
            tf.summary.scalar("refine/val_spectral", logs["val_spectral"])
            tf.summary.scalar("refine/val_spectrum_gap", logs["val_spectrum_gap"])
        self.writer.flush()
