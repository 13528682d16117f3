"""Evaluation metrics on cases whose answer is known, and the report end to end."""
import json

import numpy as np
import pytest

from cvae.evaluate.features import FEATURES, spectral_features, waveform_features
from cvae.noise import noise_floor_sigma
from cvae.evaluate import judges
from cvae.evaluate.judges import discriminative_score
from cvae.evaluate.metrics import conditioning_and_utility, diversity_and_copies, feature_distances
from cvae.evaluate.report import evaluate
from cvae.generate import generate
from data_prep.normalize import normalize
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects
from data_prep.config import load_config
from data_prep.errors import UserError


@pytest.fixture(scope="module")
def cohort():
    cfg = load_config(None, ["simulate.n_subjects=900", "simulate.segments_per_subject=1",
                             "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, 11), 1)
    x = normalize(simulate_signals(rows, cfg.simulate, cfg.data, 11), "maxabs")
    return x, rows["age"].to_numpy(), cfg, rows["hr"].to_numpy()


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


@pytest.mark.slow
def test_the_cnn_judge_sees_beat_shape_that_the_spectrum_judge_cannot(cohort):
    """Known answers for the neural judge: time-reversed windows have the same magnitude spectrum (the linear judge
    on spectra is blind to them, by construction) but beats that rise slowly and fall fast: the CNN tells them
    apart. Two halves of one population score low (its floor)."""
    x, *_ = cohort
    subjects = np.arange(len(x)).astype(str)
    halves = discriminative_score((x[:450], subjects[:450]), (x[450:], subjects[450:]), 0, judges.cnn, cap=450)
    reversed_ = discriminative_score((x[:450], subjects[:450]), (x[450:, ::-1], subjects[450:]), 0, judges.cnn,
                                     cap=450)
    blind = discriminative_score((spectral_features(x[:450]), None), (spectral_features(x[450:, ::-1]), None), 0)
    assert halves["score"] < 0.08 and reversed_["score"] > 0.4 and blind["score"] < 0.08, (halves, reversed_, blind)
    again = discriminative_score((x[:450], subjects[:450]), (x[450:, ::-1], subjects[450:]), 0, judges.cnn, cap=450)
    assert again == reversed_                                      # seeded: the same score on a rerun


def test_verdicts_fail_an_invented_age_effect_and_an_opposite_trend():
    from cvae.evaluate.verdicts import headline, verdicts
    m = {"spearman_age_real": 0.6, "spearman_age_synthetic": 0.55, "tstr_mae": 11.0, "trtr_mae": 10.0,
         "judges": {"linear": {"floor": 0.05, "requested": 0.1}, "cnn": {"floor": 0.1, "requested": 0.3}},
         "within_source": [{"source": "s", "spearman_real": 0.09, "spearman_synthetic": {"requested": 0.53,
                                                                                         "label_matched": 0.2},
                            "tstr_mae": 5.0, "trtr_mae": 4.0,
                            "judges": {"cnn": {"floor": 0.1, "label_matched": 0.15}}}],
         "feature_trends": {"b_a": {"slope_real": -0.1, "rho_real": -0.4, "slope_synthetic": 0.05,
                                    "rho_synthetic": 0.2},
                            "hr": {"slope_real": 0.0, "rho_real": 0.02, "slope_synthetic": 3.0, "rho_synthetic": 0.5}},
         "copy_fraction": 0.01}
    rows = {r["check"].split(" (")[0].split(",")[0]: r["verdict"] for r in verdicts(m)}
    assert rows["age conditioning: Spearman synthetic / real"] == "pass"
    assert rows["judge linear"] == "pass" and rows["judge cnn"] == "fail"     # 0.3 vs floor 0.1
    assert rows["TSTR / TRTR MAE"] == "pass"
    full = {r["check"].split(" (")[0]: r["verdict"] for r in verdicts(m)}
    assert full["age effect within s, requested synthetic"] == "fail"           # 0.53 vs 0.09: invented
    assert full["age effect within s, label-matched synthetic"] == "pass"       # 0.2 vs 0.09
    assert rows["judge cnn within s"] == "pass" and rows["TSTR / TRTR MAE within s"] == "fail"   # 5 / 4 > 1.2
    assert rows["b_a per-decade trend"] == "fail" and "hr per-decade trend" not in rows   # no real hr trend
    assert headline(m) == {"judge": "cnn", "set": "requested", "score": 0.3, "floor": 0.1}


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


def test_evaluate_writes_the_report(trained_run, smoke_data, tmp_path):
    generate(trained_run, np.array([30.0, 50.0, 70.0]), 20, tmp_path / "s.npz", seed=0)
    metrics = evaluate(tmp_path / "s.npz", smoke_data, tmp_path / "report", seed=0, model=trained_run)
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    for key in ("spearman_age_synthetic", "spearman_age_real", "discriminative_score", "tstr_mae", "trtr_mae"):
        assert isinstance(saved[key], float) and saved[key] == pytest.approx(metrics[key])
    assert saved["counts"]["synthetic"] == 60
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Spearman" in report and "age_conditioning.png" in report and "Wasserstein" in report
    assert f"each of the {saved['counts']['real_test_subjects']} test subjects' signals held out together" in report
    assert saved["synthetic_request"]["latent"] == "fitted" and "latent draws fitted" in report
    assert f"at its labels\n({saved['counts']['real_test']} signals)." in report   # one per real test signal
    assert (tmp_path / "report" / "age_conditioning.png").stat().st_size > 1000
    by_decade = saved["feature_wasserstein"]["by_decade"]
    assert by_decade and set(by_decade) <= {"30s", "50s", "70s"}, by_decade   # the requested decades only
    assert all(v is None or np.isfinite(v) for d in by_decade.values() for v in d.values())
    assert (tmp_path / "report" / "beats_by_age.png").stat().st_size > 1000
    assert saved["counts"]["label_matched"] == saved["counts"]["real_test"]     # one per real test signal
    assert set(saved["judges"]) == {"linear", "cnn"}
    assert all(set(v) == {"floor", "requested", "label_matched"} for v in saved["judges"].values())
    assert saved["headline_judge"]["judge"] in ("linear", "cnn") and "Worst judge:" in report
    assert {v["verdict"] for v in saved["verdicts"]} <= {"pass", "fail", "n/a"} and "## Verdicts" in report
    audit = saved["membership"]   # members: the training subjects in the sample; non-members: every test subject
    assert audit["non_members"] == saved["counts"]["real_test_subjects"] and audit["members"] >= 2
    assert audit["reference_windows"] == saved["counts"]["real_val"] > 0
    assert set(audit["attacks"]) == {"dcr", "domias"} and "## Privacy: membership inference" in report
    assert sum(v["check"].startswith("membership inference") for v in saved["verdicts"]) == 2
    with np.load(tmp_path / "s.npz") as npz:
        np.savez(tmp_path / "other.npz", **{k: npz[k] for k in npz.files if k != "model_id"}, model_id=np.array("x"))
    with pytest.raises(UserError, match="was made by model x; pass the run that made the file"):
        evaluate(tmp_path / "other.npz", smoke_data, tmp_path / "r2", seed=0, model=trained_run)


def test_within_source_fidelity_has_known_answers():
    from cvae.evaluate.metrics import disjoint_sources, source_of, within_source
    rng = np.random.default_rng(0)

    def split(n):
        ages = np.concatenate([rng.uniform(20, 30, n), rng.uniform(50, 60, n)])
        src = source_of(np.array([f"a:{i}" for i in range(n)] + [f"b:{i}" for i in range(n)]))
        informative = np.where(src == "a", ages, 0.0) + 0.3 * rng.standard_normal(2 * n)   # only 'a' carries age
        return np.c_[informative, rng.standard_normal((2 * n, 3))], ages, src

    train, test = split(200), split(100)
    syn_age = np.repeat([22.0, 25.0, 28.0], 30)
    synthetic = (np.c_[syn_age + 0.3 * rng.standard_normal(90), rng.standard_normal((90, 3))], syn_age, None)
    by_source = (test[0], test[1], test[2])   # a set that knows each signal's source: judged on those signals
    rows = {r["source"]: r for r in within_source(train, test, {"requested": synthetic, "matched": by_source})}
    assert rows["a"]["spearman_real"] > 0.9 and abs(rows["b"]["spearman_real"]) < 0.3
    assert rows["a"]["synthetic"]["requested"] == 90 and rows["a"]["spearman_synthetic"]["requested"] > 0.8
    assert rows["b"]["synthetic"]["requested"] == 0 and rows["b"]["spearman_synthetic"]["requested"] is None
    assert rows["b"]["synthetic"]["matched"] == 100 and rows["b"]["spearman_synthetic"]["matched"] \
        == rows["b"]["spearman_real"]
    assert disjoint_sources(train)
    assert not disjoint_sources((train[0], np.where(train[2] == "a", train[1] + 30, train[1]), train[2]))


@pytest.mark.slow
def test_large_sets_are_sampled_in_one_streaming_pass_and_the_report_says_so(trained_run, smoke_data, tmp_path,
                                                                              monkeypatch):
    from cvae.evaluate import report as report_module
    from cvae.evaluate.report import load_synthetic
    from data_prep.manifest import load_manifest
    generate(trained_run, np.array([30.0, 50.0, 70.0]), 40, tmp_path / "s.npz", seed=0)
    with np.load(tmp_path / "s.npz") as npz:
        every, ages = npz["signals"], npz["labels"][:, list(npz["label_names"]).index("age")]
    monkeypatch.setitem(report_module.SAMPLE, "synthetic", 50)     # caps small enough for the smoke data
    monkeypatch.setitem(report_module.SAMPLE, "train", 60)
    x, age, sources, _, total = load_synthetic(tmp_path / "s.npz", np.random.default_rng(3))
    assert sources is None                                         # a model not conditioned on source
    rows = np.sort(np.random.default_rng(3).choice(120, 50, replace=False))
    assert total == 120 and len(x) == 50
    np.testing.assert_array_equal(x, every[rows])                  # the drawn rows, with their own labels
    np.testing.assert_array_equal(age, ages[rows])
    evaluate(tmp_path / "s.npz", smoke_data, tmp_path / "report", seed=0)
    counts = json.loads((tmp_path / "report" / "metrics.json").read_text())["counts"]
    assert counts["synthetic"] == 50 and counts["real_train"] == 60
    train_total = load_manifest(smoke_data).splits["train"].count
    assert counts["sampled_from"] == {"real_train": train_total, "real_val": counts["real_val"],
                                      "real_test": counts["real_test"], "synthetic": 120}
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"Sampled at random (seed 0) to bound memory: 60 of {train_total} real train, 50 of 120 synthetic" in text
    assert "at its labels\n(none: evaluate was not given --model)." in text


def test_a_column_major_label_member_is_read_only_when_small(tmp_path):
    import zipfile

    from cvae.evaluate.report import load_synthetic
    signals, labels = np.zeros((6, 32), np.float32), np.asfortranarray(np.arange(12, dtype=np.float64).reshape(6, 2))
    meta = {"label_names": np.array(["age", "sex"]), "request": np.array("{}"), "model_id": np.array("m")}
    np.savez(tmp_path / "small.npz", signals=signals, labels=labels, **meta)
    _, age, _, _, total = load_synthetic(tmp_path / "small.npz", np.random.default_rng(0))
    assert total == 6 and list(age) == [0, 2, 4, 6, 8, 10]
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:        # a header claiming 6.4 GB, 100 bytes of data
        for name, arr in (("signals", signals),) + tuple(meta.items()):
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, arr)
        with zf.open("labels.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": True, "shape": (400_000_000, 2)})
            fh.write(b"\0" * 100)
    with pytest.raises(UserError, match="labels is a column-major array of 6,400,000,000 bytes"):
        load_synthetic(tmp_path / "huge.npz", np.random.default_rng(0))
