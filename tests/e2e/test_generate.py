"""Generation from an exported model (no Horovod): determinism, label overrides, requests, outputs."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cvae.generation import label_summary
from cvae.generation.equalizer import equalizer_problem
from cvae.generation.generate import generate
from data_prep.common import UserError


def test_generation_is_deterministic_and_records_how_labels_were_made(trained_run, tmp_path):
    ages = np.array([30.0, 50.0])
    a = generate(trained_run, ages, 5, tmp_path / "a.npz", seed=3, formats=("csv", "pickle"))
    generate(trained_run, ages, 5, tmp_path / "b.npz", seed=3)
    generate(trained_run, ages, 5, tmp_path / "c.npz", seed=4)
    assert a["signals"] == 10
    with np.load(tmp_path / "a.npz") as x, np.load(tmp_path / "b.npz") as y, np.load(tmp_path / "c.npz") as z:
        assert np.array_equal(x["signals"], y["signals"])
        assert not np.array_equal(x["signals"], z["signals"])
        names = list(x["label_names"])
        labels = x["labels"]
        assert labels[:, names.index("age")].tolist() == [30.0] * 5 + [50.0] * 5
        assert x["signals"].shape == (10, 1024) and np.isfinite(x["signals"]).all()
        assert np.abs(x["signals"]).max() <= 1.0   # tanh output, the maxabs data range
        request = json.loads(str(x["request"]))
        assert request["seed"] == 3 and request["conditions"] == ["age"]
        meta = json.loads((trained_run / "model" / "meta.json").read_text())
        assert request["equalizer"] == meta["equalizer"] and equalizer_problem(meta["equalizer"], 125.0) is None
        assert set(request["unconditioned_labels"]["columns"]) == set(names) - {"age"}
        assert "signals do not depend on them" in request["unconditioned_labels"]["how"]
    assert (tmp_path / "a.png").stat().st_size > 1000
    csv = pd.read_csv(tmp_path / "a.csv")
    assert len(csv) == 10 and list(csv["age"]) == [30.0] * 5 + [50.0] * 5
    ref = pd.read_pickle(tmp_path / "a.pickle")
    assert set(ref) == {"labels", "samples"} and len(ref["samples"]) == 10


def test_generation_needs_the_model_directory_alone_which_holds_no_training_row(trained_run, smoke_data, tmp_path):
    """A copy of RUN/model, without the run or the data set, generates; its open labels follow the training labels
    near the age (sex mix and height of the training subjects 30-50) and no file in it holds a training row."""
    shared = tmp_path / "shared"
    shutil.copytree(trained_run / "model", shared / "model")
    generate(shared, np.array([40.0]), 400, tmp_path / "g.npz", seed=0)
    with np.load(tmp_path / "g.npz") as g:
        drawn = pd.DataFrame(g["labels"], columns=list(g["label_names"]))
    table = pd.read_csv(smoke_data / "labels-train.csv.gz")
    near = table[(table["age"] >= 30) & (table["age"] < 50)].drop_duplicates("subject_id")
    assert set(drawn["sex"]) <= {0.0, 1.0} and abs(drawn["sex"].mean() - near["sex"].mean()) < 0.15
    assert abs(drawn["height"].mean() - near["height"].mean()) < 0.5 * near["height"].std()
    assert drawn["height"].between(table["height"].min() - 1e-3, table["height"].max() + 1e-3).all()   # float32
    text = "".join(f.read_bytes().decode("latin-1") for f in (shared / "model").iterdir())
    assert not any(sid in text for sid in table["subject_id"])
    for column in ("height", "weight"):   # no training value but the range's ends (docs/SECURITY.md) is stored
        inside = table[column][table[column].between(table[column].min(), table[column].max(), inclusive="neither")]
        assert not any(f"{v:.6g}" in text for v in inside), column


def test_out_of_range_requests_are_refused(trained_run, tmp_path):
    with pytest.raises(UserError, match="training range"):
        generate(trained_run, np.array([5.0]), 2, tmp_path / "x.npz")
    with pytest.raises(UserError, match=r"--label bmi: this model is conditioned on age only"):
        generate(trained_run, np.array([40.0]), 2, tmp_path / "x.npz", fixed={"bmi": 25.0})
    with pytest.raises(UserError, match=".npz"):
        generate(trained_run, np.array([40.0]), 2, tmp_path / "x.csv")
    assert not list(tmp_path.iterdir())   # nothing half-written
    generate(trained_run, np.array([5.0]), 2, tmp_path / "x.npz", allow_extrapolation=True)
    assert (tmp_path / "x.npz").is_file()


def test_a_request_too_large_for_memory_is_refused_with_its_size_before_any_work(trained_run, tmp_path):
    with pytest.raises(UserError, match=r"400,000,000 signals: 1638.40 GB of signals to write, .* GB of labels in "
                                        r"memory, more than the .* GB \(a quarter of this machine's memory\)"):
        generate(trained_run, np.array([30.0, 50.0]), 200_000_000, tmp_path / "huge.npz")
    assert not list(tmp_path.iterdir())


def test_a_fixed_condition_reaches_the_decoder_and_the_labels(smoke_data, tmp_path):
    """A model conditioned on age and bmi (exported untrained: the wiring, not the quality, is under test)."""

    from conftest import SMOKE
    from cvae.config import load_config
    from cvae.generation.export import export_model
    from cvae.model.network import CVAE
    from data_prep.manifest import load_manifest

    cfg = load_config(SMOKE, ["model.conditions=[age, bmi]"])
    manifest = load_manifest(smoke_data)
    model = CVAE(cfg.model, manifest.signal_length, 2)
    model.build([(None, manifest.signal_length), (None, 2)])
    run = tmp_path / "run"
    run.mkdir()
    export_model(model, cfg, manifest, run, best_val_loss=0.0, noise_sigma=0.0,
                 labels=label_summary.from_dataset(smoke_data, manifest))
    bmi = manifest.labels["bmi"]
    low, high = bmi.min + 1, bmi.max - 1
    for value in (low, high):
        generate(run, np.array([40.0]), 4, tmp_path / f"b{value:.0f}.npz", seed=1, fixed={"bmi": value})
    with np.load(tmp_path / f"b{low:.0f}.npz") as a, np.load(tmp_path / f"b{high:.0f}.npz") as b:
        names = list(a["label_names"])
        assert np.allclose(a["labels"][:, names.index("bmi")], low)
        assert not np.allclose(a["signals"], b["signals"])
        assert "bmi" not in json.loads(str(a["request"]))["unconditioned_labels"]["columns"]
    with pytest.raises(UserError, match=r"--label hr: this model is conditioned on age, bmi only"):
        generate(run, np.array([40.0]), 2, tmp_path / "x.npz", fixed={"hr": 70.0})


def test_latent_draws_follow_the_training_encodings_of_the_requested_age(trained_run, smoke_data, tmp_path):
    """z for an age comes from the mixture fit to training encodings, with conditions scaled as in training."""
    from tensorflow import keras

    from cvae.generation.sampler import Generator
    from data_prep.manifest import load_manifest, shard_paths
    from data_prep.shards import read_arrays

    gen = Generator(trained_run)
    assert gen.prior is not None and "mixture" in gen.meta["latent_prior"]
    assert gen.prior.subjects.min() >= 1 and len(gen.prior.subjects) == gen.prior.components   # stated per component
    assert f"at least {gen.prior.subjects.min()} subjects per component" in gen.meta["latent_prior"]
    manifest = load_manifest(smoke_data)
    signals, labels = read_arrays(shard_paths(smoke_data, manifest, "train"), ["age"], manifest.signal_length,
                                  manifest.compression)
    encoder = keras.models.load_model(trained_run / "model" / "encoder.keras", compile=False)
    z_mean, z_log_var = encoder.predict([signals, gen.scale(labels)], verbose=0)
    # 20 draws of q(z | x, c) per training signal, so the comparison is not at the mercy of one draw each
    z = z_mean + np.exp(0.5 * z_log_var) * np.random.default_rng(0).standard_normal((20,) + z_mean.shape)
    spread = z.reshape(-1, z.shape[-1]).std(axis=0)
    for group in (labels[:, 0] < np.percentile(labels, 33), labels[:, 0] > np.percentile(labels, 67)):
        draws = gen.latent(labels[group].repeat(100, axis=0), np.random.default_rng(0))
        real = z[:, group].reshape(-1, z.shape[-1])
        assert np.all(np.abs(draws.mean(axis=0) - real.mean(axis=0)) < 0.3 * spread)
        assert np.all(np.abs(draws.std(axis=0) / real.std(axis=0) - 1) < 0.3)

    ages = np.array([40.0])
    generate(trained_run, ages, 8, tmp_path / "f.npz", seed=1)
    generate(trained_run, ages, 8, tmp_path / "s.npz", seed=1, fitted_latent=False)
    with np.load(tmp_path / "f.npz") as f, np.load(tmp_path / "s.npz") as s:
        assert json.loads(str(f["request"]))["latent"] == "fitted"
        assert json.loads(str(s["request"]))["latent"] == "standard"
        assert not np.array_equal(f["signals"], s["signals"])


def test_a_missing_or_broken_latent_prior_is_a_clear_error(trained_run, tmp_path):

    from cvae.generation.sampler import Generator

    run = tmp_path / "run"
    shutil.copytree(trained_run / "model", run / "model")
    (run / "model" / "latent_prior.npz").write_bytes(b"not an npz")
    with pytest.raises(UserError, match="latent_prior.npz is unreadable"):
        Generator(run)
    (run / "model" / "latent_prior.npz").unlink()
    with pytest.raises(UserError, match="latent_prior.npz is missing"):
        Generator(run)


def test_band_limit_and_equalizer_travel_from_export_to_the_signals(smoke_data, tmp_path):
    """Prep's band limit travels manifest -> meta.json -> generation: the same model exported from a manifest that
    records a 10 Hz Chebyshev II band-pass generates signals without their power above 10 Hz; exported with an
    equalizer of amplitude gain 2 at 2-6 Hz, its signals have 4 times the power there relative to 8-20 Hz."""
    import dataclasses

    from tensorflow import keras

    from conftest import SMOKE
    from cvae.config import load_config
    from cvae.generation.export import export_model
    from cvae.model.network import CVAE
    from data_prep.manifest import load_manifest

    cfg = load_config(SMOKE)
    manifest = load_manifest(smoke_data)
    keras.utils.set_random_seed(0)
    model = CVAE(cfg.model, manifest.signal_length, 1)
    model.build([(None, manifest.signal_length), (None, 1)])
    limit = {"filter": "cheby2", "order": 4, "stopband_db": 20.0, "high_hz": 10.0}
    banded = dataclasses.replace(manifest, source={**manifest.source, "conditioning": {"band_limit": limit}})
    grid = np.arange(0.0, manifest.fs / 2 + 1e-9, 0.5)
    equalizer = {"hz": grid.tolist(), "gain": np.where((grid >= 2) & (grid <= 6), 2.0, 1.0).tolist()}
    spectra = {}
    for name, m, eq in (("plain", manifest, None), ("banded", banded, None), ("equalized", manifest, equalizer)):
        run = tmp_path / name
        run.mkdir()
        export_model(model, cfg, m, run, best_val_loss=0.0, noise_sigma=0.0, equalizer=eq,
                     labels=label_summary.from_dataset(smoke_data, manifest))
        generate(run, np.array([40.0, 60.0]), 8, tmp_path / f"{name}.npz", seed=2)
        with np.load(tmp_path / f"{name}.npz") as g:
            spectra[name] = np.abs(np.fft.rfft(g["signals"], axis=1)) ** 2
            request = json.loads(str(g["request"]))
            assert request["band_limit"] == (limit if name == "banded" else None) and request["equalizer"] == eq
            assert np.isclose(np.abs(g["signals"]).max(axis=1), 1.0).all()   # normalized after the filter
    hz = np.fft.rfftfreq(manifest.signal_length, 1 / manifest.fs)
    high_to_low = {k: s[:, hz > 12].sum(1) / s[:, hz < 6].sum(1) for k, s in spectra.items()}
    assert np.median(high_to_low["plain"]) > 1e-2       # the untrained decoder has power up there
    assert (high_to_low["banded"] < 1e-2 * high_to_low["plain"]).all()   # at least 20 dB less of it
    boosted = {k: s[:, (hz > 2.5) & (hz < 5.5)].sum(1) / s[:, (hz > 8) & (hz < 20)].sum(1) for k, s in spectra.items()}
    assert np.allclose(boosted["equalized"] / boosted["plain"], 4.0, rtol=0.15)
