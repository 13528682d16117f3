"""Training-window augmentations that keep the physiology: a smaller amplitude, a slow baseline drift, a small
change of time scale (the heart rate by a few percent), white sensor noise. Each draw is a stateless function of a
seed, so a resumed run sees the same augmented batches."""
from __future__ import annotations

import tensorflow as tf


def _uniform(shape, seed, stream: int, lo, hi):
    return tf.random.stateless_uniform(shape, seed=tf.stack([seed[0], seed[1] * 8 + stream]), minval=lo, maxval=hi)


def warp(signal, scale):
    """Each window read at positions c + (t - c) * scale (c its centre) by linear interpolation, mirrored at the
    ends: scale > 1 compresses the beats (a faster rate), < 1 stretches them."""
    length = tf.shape(signal)[1]
    last = tf.cast(length - 1, tf.float32)
    t = tf.range(length, dtype=tf.float32)[None, :]
    p = last / 2 + (t - last / 2) * scale[:, None]
    p = tf.abs(p)                                   # mirror below 0
    p = last - tf.abs(last - tf.math.floormod(p, 2 * last))   # and above the end
    lo = tf.minimum(tf.cast(tf.floor(p), tf.int32), length - 2)
    frac = p - tf.cast(lo, tf.float32)
    left = tf.gather(signal, lo, batch_dims=1)
    right = tf.gather(signal, lo + 1, batch_dims=1)
    return left + frac * (right - left)


def augment(signal, seed, amplitude: float = 0.0, baseline: float = 0.0, time_warp: float = 0.0,
            noise: float = 0.0):
    """`signal` [batch, length] with, per window: amplitude x U(1 - amplitude, 1); a linear drift from -d to d over
    the window, d ~ U(-baseline, baseline); time scale U(1 - time_warp, 1 + time_warp); white noise of sd
    U(0, noise). `seed`: two int64 (e.g. epoch, step). With every setting 0 the batch is returned as it is."""
    if not (amplitude or baseline or time_warp or noise):
        return signal
    batch, length = tf.shape(signal)[0], tf.shape(signal)[1]
    if time_warp:
        signal = warp(signal, _uniform([batch], seed, 0, 1 - time_warp, 1 + time_warp))
    if amplitude:
        signal = signal * _uniform([batch, 1], seed, 1, 1 - amplitude, 1.0)
    if baseline:
        ramp = tf.linspace(-1.0, 1.0, length)[None, :]
        signal = signal + _uniform([batch, 1], seed, 2, -baseline, baseline) * ramp
    if noise:
        sd = _uniform([batch, 1], seed, 3, 0.0, noise)
        signal = signal + sd * tf.random.stateless_normal([batch, length], seed=tf.stack([seed[0], seed[1] * 8 + 4]))
    return signal
