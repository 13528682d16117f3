"""Conditional convolutional VAE: encoder, decoder, and the Keras model that trains them."""
from __future__ import annotations

import tensorflow as tf

from cvae.keras2 import keras
from cvae.model.settings import ModelConfig

layers = keras.layers


def dropout(h, rate: float):
    """Dropout of `rate` after a dense layer in training (none at 0)."""
    return layers.Dropout(rate)(h) if rate else h


def build_encoder(cfg: ModelConfig, length: int, n_cond: int) -> keras.Model:
    """Strided Conv1D stack -> flatten -> concat condition -> dense stack (each with model.dropout) ->
    (z_mean, z_log_var)."""
    signal = keras.Input((length,), name="signal")
    cond = keras.Input((n_cond,), name="condition")
    h = layers.Reshape((length, 1))(signal)
    for filters in cfg.filters:
        h = layers.Conv1D(filters, cfg.kernel_size, strides=cfg.stride, padding="same",
                          activation=cfg.conv_activation)(h)
    h = layers.Concatenate()([layers.Flatten()(h), cond])
    for units in cfg.dense_units:
        h = dropout(layers.Dense(units, activation="relu")(h), cfg.dropout)
    z_mean = layers.Dense(cfg.latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(cfg.latent_dim, name="z_log_var")(h)
    return keras.Model([signal, cond], [z_mean, z_log_var], name="encoder")


def residual_block(h, filters: int, activation: str, dilation: int):
    """h + Conv1D(k 3, dilated)(activation(Conv1D(k 3, dilated)(h))): detail at the block's resolution, the input
    kept (the residual stacks of MelGAN-style generators; dilations 1, 3, 9, ... widen what each block sees)."""
    x = layers.Conv1D(filters, 3, padding="same", dilation_rate=dilation, activation=activation)(h)
    return layers.Add()([h, layers.Conv1D(filters, 3, padding="same", dilation_rate=dilation)(x)])


def build_decoder(cfg: ModelConfig, length: int, n_cond: int) -> keras.Model:
    """concat(z, condition) -> dense stack (mirrored) -> reshape -> Conv1DTranspose stack, each upsampling followed
    by model.decoder_residual_blocks residual blocks -> Conv1D(1, output activation)."""
    z = keras.Input((cfg.latent_dim,), name="z")
    cond = keras.Input((n_cond,), name="condition")
    steps = length // cfg.stride ** len(cfg.filters)
    h = layers.Concatenate()([z, cond])
    for units in reversed(cfg.dense_units):
        h = dropout(layers.Dense(units, activation="relu")(h), cfg.dropout)
    h = layers.Dense(steps * cfg.filters[-1], activation="relu")(h)
    h = layers.Reshape((steps, cfg.filters[-1]))(h)
    for filters in reversed(cfg.filters):
        h = layers.Conv1DTranspose(filters, cfg.kernel_size, strides=cfg.stride, padding="same",
                                   activation=cfg.conv_activation)(h)
        for block in range(cfg.decoder_residual_blocks):
            h = residual_block(h, filters, cfg.conv_activation, dilation=3 ** block)
    h = layers.Conv1D(1, cfg.kernel_size, padding="same", activation=cfg.output_activation, dtype="float32")(h)
    return keras.Model([z, cond], layers.Reshape((length,), dtype="float32")(h), name="decoder")


class CVAE(keras.Model):
    """Trains encoder + decoder on (signal, condition) batches: loss = reconstruction + beta * KL."""

    def __init__(self, cfg: ModelConfig, length: int, n_cond: int, seed: int = 0, step_hooks=(),
                 jit_compile: bool = False, rank_mean=None, private=None, **kwargs):
        """`seed` (one per rank) keys the latent noise. `step_hooks` are called with the loss inside every
        training step (the trainer agrees on stopping there). `jit_compile` XLA-compiles the loss computation
        (forward and backward); the allreduce stays outside. `rank_mean` averages a scalar over the ranks (the
        calibrated sigma's statistic, so that R ranks of batch b train as one of batch R x b; None: this process's
        batch alone). `private` (a cvae.training.privacy.PrivateStep) trains with DP-SGD instead."""
        super().__init__(**kwargs)
        self.encoder = build_encoder(cfg, length, n_cond)
        self.decoder = build_decoder(cfg, length, n_cond)
        self.likelihood = cfg.likelihood
        self.rank_mean = rank_mean
        # log of the shared observation noise sigma: learned (gaussian), or its optimum for the last training batch
        # (calibrated); exported with the model
        self.log_sigma = tf.Variable(-1.0 if cfg.likelihood == "gaussian" else 0.0,
                                     trainable=cfg.likelihood == "gaussian", name="log_sigma")
        self.noise_seed = seed
        self.noise_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="noise_step")
        if jit_compile:
            self.losses_for = tf.function(self.losses_for, jit_compile=True)
        self.beta = tf.Variable(cfg.beta, trainable=False, dtype=tf.float32, name="beta")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "recon", "kl")}
        self.step_hooks = list(step_hooks)
        self.private = private

    @property
    def metrics(self):
        return list(self.trackers.values())

    def latent_noise(self, shape, dtype=tf.float32):
        """eps ~ N(0, I) of `shape`, a stateless function of (seed, step counter): the counter is checkpointed, so a
        resumed run draws the same noise."""
        step = self.noise_step.assign_add(1)
        seed = tf.stack([tf.constant(self.noise_seed, tf.int64), step])
        return tf.random.stateless_normal(shape, seed=seed, dtype=dtype)

    def sample_z(self, z_mean, z_log_var, eps=None):
        """The reparameterization trick, z = mean + exp(log_var / 2) * eps (eps: latent_noise unless given)."""
        eps = self.latent_noise(tf.shape(z_mean), z_mean.dtype) if eps is None else tf.cast(eps, z_mean.dtype)
        return z_mean + tf.exp(0.5 * z_log_var) * eps

    def call(self, inputs, training=False):
        """Reconstruction: sampled z in training, z_mean otherwise."""
        signal, cond = inputs
        z_mean, z_log_var = self.encoder([signal, cond], training=training)
        z = self.sample_z(z_mean, z_log_var) if training else z_mean
        return self.decoder([z, cond], training=training)

    def losses_for(self, signal, cond, training=False, eps=None):
        """Per-batch means of the reconstruction term and of the KL divergence. The reconstruction term is the
        summed squared error (sse), or the Gaussian negative log-likelihood (sum over samples of
        0.5 * err^2 / sigma^2 + log sigma, without the constant) with one sigma shared by all samples: learned as
        a weight (gaussian), or at its maximum-likelihood value for the global batch, sqrt(mean squared error)
        (calibrated: the "sigma-VAE" of Rybkin et al. 2021). A learned sigma falls at most about one Adam step
        (the learning rate, in log sigma) per update, which bounds how fast the loss can improve when updates are
        few (large batches); the calibrated sigma has no such bound.

        Training samples z (with `eps` when given); evaluation decodes z_mean, so validation (and early stopping) is
        deterministic.
        """
        z_mean, z_log_var = self.encoder([signal, cond], training=training)
        z = self.sample_z(z_mean, z_log_var, eps) if training else z_mean
        recon = self.decoder([z, cond], training=training)
        z_mean, z_log_var = tf.cast(z_mean, tf.float32), tf.cast(z_log_var, tf.float32)
        sse = tf.reduce_sum(tf.square(signal - recon), axis=1)
        if self.likelihood != "sse":
            length = tf.cast(tf.shape(signal)[1], tf.float32)
            log_sigma = self.log_sigma
            if self.likelihood == "calibrated":
                mean_sse = tf.stop_gradient(tf.reduce_mean(sse))
                if training and self.rank_mean is not None:
                    mean_sse = self.rank_mean(mean_sse)
                log_sigma = 0.5 * tf.math.log(mean_sse / length + 1e-12)
                if training:
                    self.log_sigma.assign(log_sigma)
            sse = 0.5 * sse * tf.exp(-2.0 * log_sigma) + length * log_sigma
        rec = tf.reduce_mean(sse)
        kl = tf.reduce_mean(-0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1))
        return rec, kl

    def _update(self, rec, kl):
        loss = rec + self.beta * kl
        for name, value in (("loss", loss), ("recon", rec), ("kl", kl)):
            self.trackers[name].update_state(value)
        return loss

    def train_step(self, data):
        signal, cond = data
        if self.private is not None:
            loss = self._update(*self.private.step(self, signal, cond))
        else:
            with tf.GradientTape() as tape:
                loss = self._update(*self.losses_for(signal, cond, training=True))
            # minimize() routes through the (Horovod-wrapped) optimizer's gradient computation, so the
            # gradients are allreduced; tape.gradient + apply_gradients would silently skip that.
            self.optimizer.minimize(loss, self.trainable_weights, tape=tape)
        for hook in self.step_hooks:
            hook(loss)
        return {name: t.result() for name, t in self.trackers.items()}

    def test_step(self, data):
        self._update(*self.losses_for(*data))
        return {name: t.result() for name, t in self.trackers.items()}
