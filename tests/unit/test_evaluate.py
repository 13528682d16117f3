"""Evaluation metrics in-process, on cases whose answer is known."""

import numpy as np

from cvae.evaluate.features import FEATURES, spectral_features, waveform_features
from cvae.evaluate.judges import discriminative_score
from cvae.evaluate.metrics import conditioning_and_utility, diversity_and_copies, feature_distances
from cvae.generation.noise import noise_floor_sigma
from data_prep.normalize import normalize


def test_real_vs_itself_is_indistinguishable_and_noise_is_not(cohort):
    x, *_ = cohort
    f = spectral_features(x)
    assert discriminative_score((f[:450], None), (f[450:], None), seed=0)["score"] < 0.1
    rng = np.random.default_rng(0)
    noise = spectral_features(normalize(rng.standard_normal((450, 1024)).astype(np.float32), "maxabs"))
    assert discriminative_score((f[:450], None), (noise, None), seed=0)["score"] > 0.45
    shuffled = spectral_features(rng.permuted(x[450:], axis=1))   # same values, no pulse structure
    assert discriminative_score((f[:450], None), (shuffled, None), seed=0)["score"] > 0.45


def test_discriminator_holds_out_whole_subjects():
    """Two sets of different subjects from one population, each subject's windows alike: indistinguishable once a
    subject's windows stay on one side of each split; a split by window recognizes the subjects instead."""
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(300), 10)
    f = rng.standard_normal((300, 40))[subjects] + 0.1 * rng.standard_normal((len(subjects), 40))
    first, second = subjects < 150, subjects >= 150
    grouped = discriminative_score((f[first], subjects[first]), (f[second], subjects[second]), seed=0)
    assert grouped["score"] < 0.05 and grouped["folds"] == 5 and grouped["subjects"] == [150, 150]
    by_window = discriminative_score((f[first], None), (f[second], None), seed=0)
    assert by_window["score"] > 0.1
    assert discriminative_score((f[first], np.zeros(first.sum())), (f[second], None), seed=0) is None   # 1 subject


def test_a_generator_that_ignores_age_has_spearman_near_zero(cohort):
    x, age, *_ = cohort
    f = spectral_features(x)
    train, test, syn = slice(0, 500), slice(500, 700), slice(700, 900)
    honest = conditioning_and_utility((f[train], age[train]), (f[test], age[test]), (f[syn], age[syn]))
    assert honest["spearman_age_real"] > 0.5
    assert honest["spearman_age_synthetic"] > 0.5 and honest["tstr_mae"] < 1.3 * honest["trtr_mae"]
    ignored = np.random.default_rng(1).permutation(age[syn])   # requested ages unrelated to the signals
    blind = conditioning_and_utility((f[train], age[train]), (f[test], age[test]), (f[syn], ignored))
    assert abs(blind["spearman_age_synthetic"]) < 0.2
    assert blind["tstr_mae"] > honest["tstr_mae"]


def test_feature_distances_are_zero_for_the_same_distribution_and_grow_with_a_shift(cohort):
    x, age, cfg, _ = cohort
    feats = waveform_features(x[:300], cfg.data.fs)
    assert list(feats.columns) == list(FEATURES) and feats["hr"].between(40, 130).mean() > 0.9
    same = feature_distances(feats, feats, age[:300], age[:300])
    assert all(v == 0 for v in same["overall"].values())
    shifted = feats + 2 * feats.std()
    moved = feature_distances(feats, shifted, age[:300], age[:300])
    assert all(abs(v - 2) < 0.05 for v in moved["overall"].values())


def test_beat_detection_recovers_the_simulated_heart_rate_and_skips_flat_signals(cohort):
    x, _, cfg, hr = cohort
    feats = waveform_features(np.vstack([x[:300], np.zeros((1, x.shape[1]), np.float32)]), cfg.data.fs)
    error = np.abs(feats["hr"].to_numpy()[:300] - hr[:300])
    assert np.median(error) < 1.0 and np.mean(error < 5) > 0.97
    assert feats.iloc[300].isna().all()


def test_copies_of_training_signals_are_flagged(cohort):
    x, age, *_ = cohort
    f = spectral_features(x)
    copies = diversity_and_copies(f[:600], f[600:750], f[:150], age[600:750], age[:150])
    fresh = diversity_and_copies(f[:600], f[600:750], f[750:], age[600:750], age[750:])
    assert copies["copy_fraction"] > 0.95 and fresh["copy_fraction"] < 0.1
    assert 0.8 < fresh["diversity_ratio"] < 1.25
    collapsed = diversity_and_copies(f[:600], f[600:750], f[[750] * 150], age[600:750], age[750:])
    assert collapsed["diversity_ratio"] < 0.01   # one signal repeated: mode collapse
    one_per_decade = diversity_and_copies(f[:600], f[600:750], f[750:752], age[600:750], np.array([20.0, 30.0]))
    assert one_per_decade["diversity_ratio"] is None


def test_noise_floor_matches_the_simulated_sensor_noise():
    rng = np.random.default_rng(0)
    t = np.arange(1024) / 125.0
    clean = np.sin(2 * np.pi * 1.2 * t)[None, :].repeat(50, 0)
    assert abs(noise_floor_sigma(clean + 0.05 * rng.standard_normal(clean.shape), 125.0) - 0.05) < 0.005


