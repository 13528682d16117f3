"""Privacy: the membership-inference audit on generators whose answer is known; the label summary."""
import json

import numpy as np
import pandas as pd
import pytest

from cvae import label_summary
from cvae.evaluate.features import spectral_features
from cvae.evaluate.membership import audit
from data_prep.config import load_config
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
