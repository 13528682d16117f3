"""Multi-resolution STFT distance between windows: spectral convergence plus log-magnitude L1 at several frame
lengths (short frames see the pulse's edges, long ones its harmonics)."""
from __future__ import annotations

import tensorflow as tf


def stft_distance(real, fake, frames=(32, 64, 128, 256)):
    """Mean over the frame lengths of ||S_r - S_f||_F / ||S_r||_F + mean |log S_r - log S_f| (S: STFT magnitude,
    hop a quarter frame, Hann window), per batch."""
    total = 0.0
    for n in frames:
        s_r = tf.abs(tf.signal.stft(real, n, n // 4, fft_length=n))
        s_f = tf.abs(tf.signal.stft(fake, n, n // 4, fft_length=n))
        convergence = tf.norm(s_r - s_f, axis=[-2, -1]) / (tf.norm(s_r, axis=[-2, -1]) + 1e-7)
        log_l1 = tf.reduce_mean(tf.abs(tf.math.log(s_r + 1e-5) - tf.math.log(s_f + 1e-5)), axis=[-2, -1])
        total += tf.reduce_mean(convergence + log_l1)
    return total / len(frames)


def mean_log_spectrum(signals, bins: int = 160):
    """The mean over windows of each window's log magnitude spectrum, mean removed and at unit energy, in its
    first `bins` bins above DC (where the beats and their harmonics are: 0-19.5 Hz at 125 Hz x 1024)."""
    x = signals - tf.reduce_mean(signals, axis=1, keepdims=True)
    x = x / tf.maximum(tf.norm(x, axis=1, keepdims=True), 1e-8)
    return tf.reduce_mean(tf.math.log(tf.abs(tf.signal.rfft(x))[:, 1:bins + 1] + 1e-6), axis=0)
