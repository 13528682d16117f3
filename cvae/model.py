"""Conditional convolutional VAE: encoder, decoder, and the Keras model that trains them."""
from __future__ import annotations

import tensorflow as tf
from tensorflow import keras

from launch.config import ModelConfig

layers = keras.layers


class Sampling(layers.Layer):
    """z = mean + exp(log_var / 2) * eps (the reparameterization trick)."""

    def call(self, inputs):
        z_mean, z_log_var = inputs
        return z_mean + tf.exp(0.5 * z_log_var) * tf.random.normal(tf.shape(z_mean))


def build_encoder(cfg: ModelConfig, length: int, n_cond: int) -> keras.Model:
    """Strided Conv1D stack -> flatten -> concat condition -> dense stack -> (z_mean, z_log_var)."""
    signal = keras.Input((length,), name="signal")
    cond = keras.Input((n_cond,), name="condition")
    h = layers.Reshape((length, 1))(signal)
    for filters in cfg.filters:
        h = layers.Conv1D(filters, cfg.kernel_size, strides=cfg.stride, padding="same",
                          activation=cfg.conv_activation)(h)
    h = layers.Concatenate()([layers.Flatten()(h), cond])
    for units in cfg.dense_units:
        h = layers.Dense(units, activation="relu")(h)
    z_mean = layers.Dense(cfg.latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(cfg.latent_dim, name="z_log_var")(h)
    return keras.Model([signal, cond], [z_mean, z_log_var], name="encoder")


def build_decoder(cfg: ModelConfig, length: int, n_cond: int) -> keras.Model:
    """concat(z, condition) -> dense stack (mirrored) -> reshape -> Conv1DTranspose stack -> Conv1D(1, output activation)."""
    z = keras.Input((cfg.latent_dim,), name="z")
    cond = keras.Input((n_cond,), name="condition")
    steps = length // cfg.stride ** len(cfg.filters)
    h = layers.Concatenate()([z, cond])
    for units in reversed(cfg.dense_units):
        h = layers.Dense(units, activation="relu")(h)
    h = layers.Dense(steps * cfg.filters[-1], activation="relu")(h)
    h = layers.Reshape((steps, cfg.filters[-1]))(h)
    for filters in reversed(cfg.filters):
        h = layers.Conv1DTranspose(filters, cfg.kernel_size, strides=cfg.stride, padding="same",
                                   activation=cfg.conv_activation)(h)
    h = layers.Conv1D(1, cfg.kernel_size, padding="same", activation=cfg.output_activation)(h)
    return keras.Model([z, cond], layers.Reshape((length,))(h), name="decoder")


class CVAE(keras.Model):
    """Trains encoder + decoder on (signal, condition) batches: loss = reconstruction + beta * KL."""

    def __init__(self, cfg: ModelConfig, length: int, n_cond: int, stop_sync=None, **kwargs):
        """`stop_sync` (e.g. a Horovod max-allreduce) agrees on `stop_requested` across ranks inside each
        training step, so a preemption request on any rank reaches all of them at no extra round trip."""
        super().__init__(**kwargs)
        self.encoder = build_encoder(cfg, length, n_cond)
        self.decoder = build_decoder(cfg, length, n_cond)
        self.sampling = Sampling()
        self.beta = tf.Variable(cfg.beta, trainable=False, dtype=tf.float32, name="beta")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "recon", "kl")}
        self.stop_sync = stop_sync
        self.stop_requested = tf.Variable(0.0, trainable=False, name="stop_requested")
        self.stop_agreed = tf.Variable(0.0, trainable=False, name="stop_agreed")

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        signal, cond = inputs
        z_mean, z_log_var = self.encoder([signal, cond], training=training)
        return self.decoder([self.sampling([z_mean, z_log_var]), cond], training=training)

    def losses_for(self, signal, cond, training=False):
        """Per-batch mean of the summed squared reconstruction error and of the KL divergence.

        Training samples z; evaluation decodes z_mean, so validation (and early stopping) is deterministic.
        """
        z_mean, z_log_var = self.encoder([signal, cond], training=training)
        z = self.sampling([z_mean, z_log_var]) if training else z_mean
        recon = self.decoder([z, cond], training=training)
        rec = tf.reduce_mean(tf.reduce_sum(tf.square(signal - recon), axis=1))
        kl = tf.reduce_mean(-0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1))
        return rec, kl

    def _update(self, rec, kl):
        loss = rec + self.beta * kl
        for name, value in (("loss", loss), ("recon", rec), ("kl", kl)):
            self.trackers[name].update_state(value)
        return loss

    def train_step(self, data):
        signal, cond = data
        with tf.GradientTape() as tape:
            loss = self._update(*self.losses_for(signal, cond, training=True))
        # minimize() routes through the (Horovod-wrapped) optimizer's gradient computation, so the
        # gradients are allreduced; tape.gradient + apply_gradients would silently skip that.
        self.optimizer.minimize(loss, self.trainable_weights, tape=tape)
        self.stop_agreed.assign(self.stop_sync(self.stop_requested) if self.stop_sync else self.stop_requested)
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, data):
        self._update(*self.losses_for(*data))
        return {name: t.result() for name, t in self.trackers.items()}
