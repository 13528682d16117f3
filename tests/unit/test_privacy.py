"""Privacy in-process: the membership-inference audit on generators whose answer is known, the label summary, DP-SGD's
clipping and accounting."""
import json

import numpy as np
import pandas as pd
import pytest

from cvae.config import load_config
from cvae.evaluate.features import spectral_features
from cvae.evaluate.membership import audit
from cvae.generation import label_summary
from data_prep.normalize import normalize
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects


def _cohort(n_subjects: int, seed: int):
    cfg = load_config(None, [f"simulate.n_subjects={n_subjects}", "simulate.segments_per_subject=2"])
    rows = segment_table(simulate_subjects(cfg.simulate, seed), 2)
    return normalize(simulate_signals(rows, cfg.simulate, cfg.data, seed), "maxabs"), rows["subject_id"].to_numpy()


@pytest.fixture(scope="module")
def population():
    """1,500 simulated subjects x 2 windows: 500 members (training), 500 non-members (test), 500 reference."""
    x, ids = _cohort(1500, 5)
    order = np.arange(len(x)) // 2
    parts = [order < 500, (order >= 500) & (order < 1000), order >= 1000]
    return x, ids, parts


def _audit(population, synthetic):
    x, ids, (members, non_members, reference) = population
    f = spectral_features(x)
    return audit((f[members], ids[members]), (f[non_members], ids[non_members]), spectral_features(synthetic),
                 f[reference], seed=0)


def test_a_generator_that_returns_its_training_windows_lightly_perturbed_is_caught(population):
    x, _, (members, *_) = population
    rng = np.random.default_rng(1)
    leaky = normalize(x[members] + 0.005 * rng.standard_normal(x[members].shape).astype(np.float32), "maxabs")
    result = _audit(population, leaky)
    assert result["members"] == result["non_members"] == 500
    for attack, numbers in result["attacks"].items():
        assert numbers["auc"]["value"] > 0.9, attack
        assert numbers["tpr_at_10pct_fpr"]["value"] > 0.5, attack
        lo, hi = numbers["auc"]["ci95"]
        assert lo <= numbers["auc"]["value"] <= hi


def test_a_generator_independent_of_the_training_subjects_is_not(population):
    independent, _ = _cohort(1000, 99)   # the same simulator, other people
    result = _audit(population, independent)
    for attack, numbers in result["attacks"].items():
        assert abs(numbers["auc"]["value"] - 0.5) <= 0.05, attack
        lo, hi = numbers["auc"]["ci95"]
        assert lo < 0.5 < hi and hi - lo < 0.2, attack
        assert numbers["tpr_at_1pct_fpr"]["value"] < 0.05, attack


def test_too_few_subjects_give_no_audit(population):
    x, ids, (members, non_members, reference) = population
    f = spectral_features(x[:40])
    one = np.array(["a"] * 20)
    assert audit((f[:20], one), (f[20:], ids[20:40]), f, f, 0) is None


def test_the_label_summary_identifies_no_one_and_keeps_how_labels_go_together():
    cfg = load_config(None, ["simulate.n_subjects=800"])
    subjects = simulate_subjects(cfg.simulate, 3)[["subject_id", "age", "sex", "height", "weight"]]
    outlier = pd.DataFrame({"subject_id": ["giant"], "age": [96.5], "sex": [0.0], "height": [231.7], "weight": [181.3]})
    table = pd.concat([subjects.loc[subjects.index.repeat(3)], outlier], ignore_index=True)   # 3 windows each
    summary = label_summary.summarize(table, ["age", "sex", "height", "weight"], [])
    assert summary["discrete"] == ["sex"] and summary["continuous"] == ["height", "weight"]
    cells = [c for b in summary["bands"] for c in b["cells"]]
    assert min(c["subjects"] for c in cells) >= label_summary.MIN_CELL
    assert sum(c["subjects"] for c in cells) + summary["suppressed_subjects"] == 801   # subjects, not windows
    assert all(edge % label_summary.AGE_BAND == 0 for b in summary["bands"] for edge in b["age"])
    text = json.dumps(summary)
    assert "giant" not in text and "231.7" not in text and "96.5" not in text
    drawn = label_summary.draw(summary, np.array([30.0, 70.0]), 4000, {"height": (140.0, 200.0),
                                                                       "weight": (40.0, 150.0)},
                               np.random.default_rng(0))
    young = subjects[(subjects["age"] >= 20) & (subjects["age"] < 40)]
    for sex in (0.0, 1.0):   # the height of each sex, not one height for all
        d, real = drawn[(drawn["age"] == 30) & (drawn["sex"] == sex)], young[young["sex"] == sex]
        assert abs(d["height"].mean() - real["height"].mean()) < 2.0
        assert abs(d["height"].std() - real["height"].std()) < 2.0
    assert drawn["height"].between(140.0, 200.0).all()
    assert abs(drawn.loc[drawn["age"] == 30, "sex"].mean() - young["sex"].mean()) < 0.05


def test_subjects_of_small_label_combinations_are_regrouped_by_the_model_conditions_not_dropped(tmp_path):
    """12 subjects per age band and source, spread over sex x site cells of 3: no full cell reaches MIN_CELL, so
    the cells fix the source (the model's condition) and draw sex and site from their overall counts."""
    rng = np.random.default_rng(0)
    rows = [{"subject_id": f"{source}{band}{i}", "age": band + 1.0 + i * 0.5, "source": source,
             "sex": float(i % 2), "site": "ward" if i % 4 < 2 else "clinic", "height": 160 + rng.normal(0, 5)}
            for source, bands in (("a", (20, 30)), ("b", (60, 70))) for band in bands for i in range(12)]
    table = pd.DataFrame(rows)
    summary = label_summary.summarize(table, ["age", "sex", "height", "source", "site"], ["source", "site"],
                                      keep=["age", "source"])
    assert summary["discrete"][0] == "source" and summary["suppressed_subjects"] == 0
    cells = [c for b in summary["bands"] for c in b["cells"]]
    assert sorted(c["discrete"][0] for c in cells) == ["a", "a", "b", "b"] and all(c["subjects"] == 12 for c in cells)
    assert all(v is None for c in cells for v in c["discrete"][1:])
    assert summary["values"]["site"] == [["clinic", 24], ["ward", 24]]
    drawn = label_summary.draw(summary, np.array([25.0, 65.0]), 2000, {"height": (140.0, 200.0)},
                               np.random.default_rng(1))
    assert set(drawn.loc[drawn["age"] == 25, "source"]) == {"a"}
    assert set(drawn.loc[drawn["age"] == 65, "source"]) == {"b"}
    assert abs(drawn["sex"].astype(float).mean() - 0.5) < 0.05 and set(drawn["site"]) == {"clinic", "ward"}
    label_summary.save(label_summary.summarize(table.drop(columns="height"), ["age", "sex", "source"], ["source"],
                                               ["source"]),
                       tmp_path)   # discrete labels only: no Gaussian to store or draw from
    loaded = label_summary.load(tmp_path, ["age", "sex", "source"], {"source": ["a", "b"]})
    assert set(label_summary.draw(loaded, np.array([65.0]), 50, {}, np.random.default_rng(2))["source"]) == {"b"}
    one = table[table["source"] == "a"].assign(site=lambda t: np.where(t.index == 0, "icu", t["site"]))
    rare = label_summary.summarize(one, ["age", "sex", "height", "source", "site"], ["source", "site"], ["age"])
    assert "icu" not in json.dumps(rare)   # a value held by one subject is not stored


def test_each_example_is_clipped_to_the_norm_over_all_weights():
    import tensorflow as tf

    from cvae.training.privacy import clipped_sum
    big = [tf.constant([[3.0, 0.0], [0.3, 0.4]]), tf.constant([[[4.0]], [[0.0]]])]   # norms 5 and 0.5
    total = clipped_sum(big, 1.0)
    np.testing.assert_allclose(total[0].numpy(), [3.0 / 5 + 0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(total[1].numpy(), [[4.0 / 5]], rtol=1e-6)


def test_epsilon_of_the_full_batch_gaussian_mechanism_matches_its_closed_form():
    """With every subject in every step, T steps of noise sigma are one Gaussian mechanism of sensitivity sqrt(T)
    / sigma, whose delta(epsilon) is known exactly (Balle & Wang 2018)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    from cvae.training.privacy import epsilon
    sigma, steps, delta = 4.0, 16, 1e-5
    mu = np.sqrt(steps) / sigma
    exact = brentq(lambda e: norm.cdf(-e / mu + mu / 2) - np.exp(e) * norm.cdf(-e / mu - mu / 2) - delta, 0, 50)
    assert epsilon(sigma, 1.0, steps, delta) == pytest.approx(exact, rel=0.02)
    subsampled = epsilon(sigma, 0.01, steps, delta)
    assert subsampled < exact / 5 and epsilon(sigma, 0.01, 4 * steps, delta) > subsampled


def test_the_noise_for_a_target_epsilon_is_the_smallest_that_keeps_it():
    """Full batch: the noise whose single Gaussian mechanism (sensitivity sqrt(T) / sigma) has exactly the target
    epsilon in closed form; subsampled: the accountant's epsilon is within the target and 1% less noise exceeds it."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    from cvae.training.privacy import epsilon, noise_for_epsilon
    steps, delta, target = 16, 1e-5, 2.0
    mu = brentq(lambda m: norm.cdf(-target / m + m / 2) - np.exp(target) * norm.cdf(-target / m - m / 2) - delta,
                1e-3, 20)
    assert noise_for_epsilon(target, 1.0, steps, delta) == pytest.approx(np.sqrt(steps) / mu, rel=0.01)
    for target in (1.0, 10.0):
        sigma = noise_for_epsilon(target, 0.05, 200, delta)
        assert epsilon(sigma, 0.05, 200, delta) <= target < epsilon(0.99 * sigma, 0.05, 200, delta)
