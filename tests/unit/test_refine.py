"""The decoder's detail in-process: the refinement's critic, its hinge and feature-matching terms, the STFT distance
and its settings; the larger decoder's residual blocks."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import SMOKE
from cvae.config import load_config
from cvae.model.critic import build_critic, split_outputs
from cvae.model.spectral import stft_distance
from cvae.training.refine import critic_loss, generator_terms
from data_prep.common import UserError

LENGTH = 256


def pulses(n: int, seed: int) -> np.ndarray:
    """Sharp periodic pulses (a beat's steep rise and its harmonics) at random rates and phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / 125.0
    rate, phase = rng.uniform(1.0, 2.0, (n, 1)), rng.uniform(0, 1, (n, 1))
    return (np.exp(8 * np.cos(2 * np.pi * (rate * t + phase))) / np.exp(8)).astype(np.float32)


def test_the_critic_gives_features_and_logits_per_scale():
    critic = build_critic(LENGTH, scales=3, width=4)
    outputs = critic(pulses(2, 0))
    per_scale = split_outputs(outputs, 3)
    assert len(per_scale) == 3
    for s, (features, logits) in enumerate(per_scale):
        assert len(features) == 4 and logits.shape[-1] == 1
        assert logits.shape[1] == LENGTH // 2 ** s // 16   # pooled by 2^s, then two stride-4 layers


def test_hinge_terms_reach_zero_only_when_the_critic_separates_with_margin():
    scales = 2
    critic = build_critic(LENGTH, scales=scales, width=4)
    real = critic(pulses(4, 1))
    confident_real = [tf.fill(tf.shape(o), 2.0) if i % 5 == 4 else o for i, o in enumerate(real)]
    confident_fake = [tf.fill(tf.shape(o), -2.0) if i % 5 == 4 else o for i, o in enumerate(real)]
    assert float(critic_loss(confident_real, confident_fake, scales)) == 0.0
    # the decoder's hinge: a rendering scored -2 costs 1 - (-2) = 3; feature matching of equal features is 0
    adversarial, matching = generator_terms(confident_real, confident_fake, scales)
    assert float(adversarial) == pytest.approx(3.0) and float(matching) == 0.0
    other = critic(pulses(4, 2))
    assert float(generator_terms(real, other, scales)[1]) > 0


def test_the_stft_distance_is_zero_for_a_copy_and_grows_with_lost_detail():
    x = tf.constant(pulses(8, 3))
    assert float(stft_distance(x, x)) == pytest.approx(0.0, abs=1e-6)
    kernel = np.ones(9, np.float32) / 9
    smooth = lambda k: tf.constant(np.stack([np.convolve(s, np.repeat(kernel, k) / k, "same")  # noqa: E731
                                             for s in x.numpy()]))
    assert 0 < float(stft_distance(x, smooth(1))) < float(stft_distance(x, smooth(3)))


def test_refinement_settings_are_checked():
    cfg = load_config(SMOKE, ["train.refine.epochs=2", "train.refine.spectral=0"])
    assert (cfg.train.refine.epochs, cfg.train.refine.spectral) == (2, 0.0)
    with pytest.raises(UserError, match=r"'train.refine.critic_scales' is 9; it must lie in \[1, 6\]"):
        load_config(SMOKE, ["train.refine.critic_scales=9"])
    with pytest.raises(UserError, match="'train.refine.learning_rate' is 0.0"):
        load_config(SMOKE, ["train.refine.learning_rate=0"])
    with pytest.raises(UserError, match="train.privacy.enabled does not combine with train.refine.epochs"):
        load_config(SMOKE, ["train.refine.epochs=1", "train.privacy.enabled=true"])


def test_a_decoder_with_residual_blocks_and_dropout_is_larger_and_loads_through_the_builtin_layer_check(tmp_path):
    from cvae.generation.sampler import load_keras_file
    from cvae.model.network import build_decoder
    cfg = load_config(SMOKE).model
    plain = build_decoder(cfg, LENGTH, 2)
    cfg.decoder_residual_blocks, cfg.dropout = 2, 0.3
    larger = build_decoder(cfg, LENGTH, 2)
    assert any(layer.__class__.__name__ == "Dropout" for layer in larger.layers)
    assert larger.count_params() > plain.count_params() and larger.output_shape == plain.output_shape == (None, LENGTH)
    larger.save(tmp_path / "decoder.keras")
    loaded = load_keras_file(tmp_path / "decoder.keras")
    z, cond = np.ones((3, cfg.latent_dim), np.float32), np.zeros((3, 2), np.float32)
    np.testing.assert_array_equal(loaded([z, cond]).numpy(), larger([z, cond]).numpy())   # no dropout outside training
    assert not np.array_equal(larger([z, cond], training=True).numpy(), larger([z, cond]).numpy())
