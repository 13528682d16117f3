"""Training-window augmentations: none when off, seeded, and each one doing what it says on known signals."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import SMOKE
from cvae.config import load_config
from cvae.training.augment import augment, warp
from data_prep.common import UserError

FS, LENGTH = 125.0, 1024


def sines(hz, n=4):
    t = np.arange(LENGTH) / FS
    return tf.constant(np.tile(np.sin(2 * np.pi * hz * t), (n, 1)).astype(np.float32))


def peak_hz(x):
    return np.argmax(np.abs(np.fft.rfft(x.numpy(), axis=1)), axis=1) * FS / LENGTH


def test_off_is_the_batch_itself_and_a_seed_gives_the_same_draw():
    x = sines(1.2)
    assert augment(x, tf.constant([1, 2], tf.int64)) is x
    settings = dict(amplitude=0.2, baseline=0.1, time_warp=0.05, noise=0.02)
    a = augment(x, tf.constant([1, 2], tf.int64), **settings)
    np.testing.assert_array_equal(a.numpy(), augment(x, tf.constant([1, 2], tf.int64), **settings).numpy())
    assert not np.array_equal(a.numpy(), augment(x, tf.constant([1, 3], tf.int64), **settings).numpy())


def test_a_time_warp_changes_the_rate_by_its_scale():
    x = sines(1.25)
    np.testing.assert_allclose(warp(x, tf.ones(4)).numpy(), x.numpy(), atol=1e-6)
    faster = warp(x, tf.fill([4], 1.04))
    assert peak_hz(faster) == pytest.approx(np.full(4, 1.25 * 1.04), abs=FS / LENGTH)
    assert np.abs(faster.numpy()).max() <= 1.0 + 1e-6     # read from the window itself: no new extremes


def test_amplitude_baseline_and_noise_stay_within_their_bounds():
    x = sines(1.0, n=64)
    seed = tf.constant([5, 1], tf.int64)
    peaks = np.abs(augment(x, seed, amplitude=0.3).numpy()).max(axis=1)
    assert (peaks <= 1.0 + 1e-6).all() and (peaks >= 0.7 - 1e-3).all() and peaks.std() > 0.03
    drift = augment(x, seed, baseline=0.1).numpy() - x.numpy()
    assert np.abs(drift).max() <= 0.1 + 1e-6 and np.abs(np.diff(drift, 2, axis=1)).max() < 1e-5   # linear
    noise = (augment(x, seed, noise=0.05).numpy() - x.numpy()).std(axis=1)
    assert noise.max() <= 0.05 * 1.2 and noise.std() > 0.005                    # a level drawn per window


def test_augmentation_settings_are_checked():
    with pytest.raises(UserError, match=r"'train.augment.time_warp' is 0.5; it must lie in \[0, 0.2\]"):
        load_config(SMOKE, ["train.augment.time_warp=0.5"])
