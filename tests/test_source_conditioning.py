"""Categorical conditions: prep codes and counts them, the model takes them one-hot, generate asks for a source by
name (or draws it like the other labels), evaluate judges each source on its own."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import SMOKE, cli, horovodrun
from data_prep.config import load_config
from data_prep.errors import UserError
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects

LABELS = ["age", "sex", "height", "weight", "bmi", "hr"]
CATEGORICAL = ["data.categories=[source, site]", "model.conditions=[age, source]"]


def two_devices(folder, n_subjects=80, per=4, seed=5):
    """Two .npz sources of one simulated cohort split by age (a.npz under 55, b.npz from 55: disjoint ranges, as real
    collections' devices often are); device b records the pulse time-reversed. A `site` column with one missing
    value. Returns the two paths and the rows."""
    cfg = load_config(SMOKE, [f"simulate.n_subjects={n_subjects}", f"simulate.segments_per_subject={per}",
                              "simulate.artifact_rate=0"])
    rows = segment_table(simulate_subjects(cfg.simulate, seed), per)
    signals = simulate_signals(rows, cfg.simulate, cfg.data, seed)
    rows["site"] = np.where(rows["subject_id"].str[-1].isin(list("01234")), "ward", "clinic")
    rows.loc[3, "site"] = ""
    paths = []
    for name, part in (("a.npz", rows["age"] < 55), ("b.npz", rows["age"] >= 55)):
        x = signals[part.to_numpy()]
        np.savez(folder / name, signals=x[:, ::-1] if name == "b.npz" else x,
                 **{c: rows.loc[part, c].to_numpy() for c in LABELS},
                 **{c: rows.loc[part, c].to_numpy(dtype=str) for c in ("subject_id", "site")})
        paths.append(folder / name)
    return paths, rows


def test_categorical_columns_are_coded_counted_and_judged_per_row(tmp_path):
    from data_prep.manifest import load_manifest, shard_paths
    from data_prep.prep import prepare
    from data_prep.shards import read_arrays
    from data_prep.sources import open_files, open_source

    (a, b), rows = two_devices(tmp_path)
    cfg = load_config(SMOKE, CATEGORICAL)
    manifest = prepare(cfg, tmp_path / "data", open_files([str(a), str(b)], cfg, None, tmp_path / "w"))
    assert list(manifest.categories["source"]) == sorted([str(a), str(b)])
    assert list(manifest.categories["site"]) == ["clinic", "ward"] and "site" not in manifest.labels
    for name, counts in manifest.categories.items():
        assert sum(counts.values()) == manifest.splits["train"].count, name
    quarantine = pd.read_csv(tmp_path / "data" / "quarantine.csv")
    assert quarantine[["reason", "detail"]].values.tolist() == [["bad_label", "site missing"]]
    # the shards hold codes; each record's source code names the file its subject came from
    x, codes, ids = read_arrays(shard_paths(tmp_path / "data", manifest, "train"), ["age", "source", "site"],
                                manifest.signal_length, manifest.compression, with_ids=True)
    expected = np.where(rows.set_index("subject_id").groupby(level=0)["age"].first().loc[ids] < 55, 0, 1)
    assert np.array_equal(codes[:, 1], expected) and set(codes[:, 2]) == {0.0, 1.0}
    table = pd.read_csv(tmp_path / "data" / manifest.label_table)
    assert set(table["source"]) == {str(a), str(b)} and set(table["site"]) == {"clinic", "ward"}
    assert load_manifest(tmp_path / "data").categories == manifest.categories

    with pytest.raises(UserError, match=r"data.categories names 'device', which is not a column"):
        open_files([str(a)], load_config(SMOKE, ["data.categories=[device]"]), None, tmp_path / "w2")
    np.savez(tmp_path / "ids.npz", signals=np.load(a)["signals"][:70], age=np.full(70, 40.0),
             subject_id=np.arange(70).astype(str), serial=np.arange(70).astype(str))
    with pytest.raises(UserError, match=r"'serial' has 70 distinct values; a condition category needs 1 to 64"):
        open_files([str(tmp_path / "ids.npz")], load_config(SMOKE, ["data.categories=[serial]"]), None,
                   tmp_path / "w3")
    with pytest.raises(UserError, match="data.categories needs --source files"):
        open_source([], load_config(SMOKE, ["data.categories=[source]"]), None, tmp_path / "w4")
    for bad, message in ((["data.categories=[Source]"], "not a categorical column name"),
                         (["data.categories=[age]"], "not a categorical column name"),
                         (["model.conditions=[age, site]"], "not in data.labels or data.categories"),
                         (["model.conditions=[sex]"], "must name age")):
        with pytest.raises(UserError, match=message):
            load_config(SMOKE, bad)


def test_the_condition_vector_is_one_hot_and_the_same_in_tensorflow_and_numpy():
    import tensorflow as tf

    from cvae.conditions import Conditions
    spec = Conditions(["age", "source", "bmi"], [50.0, 0.0, 25.0], [10.0, 1.0, 5.0], {"source": ["a", "b", "c"]})
    raw = np.array([[40.0, 2, 30.0], [60.0, 0, 20.0]], np.float32)
    assert spec.width == 5 and spec.column("bmi") == 4
    np.testing.assert_array_equal(spec.numeric_mask(), [1, 0, 0, 0, 1])   # train.condition_noise: numeric only
    expected = [[-1, 0, 0, 1, 1], [1, 1, 0, 0, -1]]
    np.testing.assert_allclose(spec.encode(raw), expected)
    np.testing.assert_allclose(spec.encode_tf(tf.constant(raw)).numpy(), expected)
    table = pd.DataFrame({"age": [40.0, 60.0], "source": ["c", "a"], "bmi": [30.0, 20.0]})
    np.testing.assert_array_equal(spec.raw(table), raw)


@pytest.mark.slow
def test_a_source_conditioned_model_generates_by_source_and_is_judged_per_source(tmp_path):
    (a, b), _ = two_devices(tmp_path)
    data, run = tmp_path / "data", tmp_path / "run"
    overrides = CATEGORICAL + ["train.epochs=4"]
    result = cli("prep", "--config", str(SMOKE), "--out", str(data), "--source", str(a), "--source", str(b), *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    result = horovodrun(2, "train", "--config", str(SMOKE), "--data", str(data), "--run-dir", str(run), *overrides)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    meta = json.loads((run / "model" / "meta.json").read_text())
    assert meta["conditions"] == ["age", "source"] and meta["condition_categories"] == {"source": sorted([str(a),
                                                                                                          str(b)])}

    # asked for by name: every signal carries it and the decoder sees it (the two devices' signals differ)
    for name in (a, b):
        out = tmp_path / f"{name.stem}.npz"
        result = cli("generate", "--model", str(run), "--ages", "50", "--n-per-age", "8", "--seed", "1",
                     "--label", f"source={name}", "--out", str(out), "--format", "csv")
        assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "a.npz") as first, np.load(tmp_path / "b.npz") as second:
        request = json.loads(str(first["request"]))
        assert request["fixed"] == {"source": str(a)} and request["drawn_conditions"] is None
        column = list(first["label_names"]).index("source")
        assert set(first["labels"][:, column]) == {0.0} and set(second["labels"][:, column]) == {1.0}
        assert not np.allclose(first["signals"], second["signals"], atol=0.05)
    assert set(pd.read_csv(tmp_path / "a.csv")["source"]) == {str(a)}
    result = cli("generate", "--model", str(run), "--ages", "50", "--n-per-age", "2", "--label", "source=c.npz",
                 "--out", str(tmp_path / "x.npz"))
    assert result.returncode == 2 and "--label source=c.npz: the model learned source from training signals of" \
        in result.stderr and not (tmp_path / "x.npz").exists()

    # not asked for: drawn from training subjects near each age, so young signals come from device a
    result = cli("generate", "--model", str(run), "--ages", "30,70", "--n-per-age", "20", "--out",
                 str(tmp_path / "drawn.npz"))
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "drawn.npz") as npz:
        request, labels = json.loads(str(npz["request"])), npz["labels"]
        sources = labels[:, list(npz["label_names"]).index("source")]
    assert request["drawn_conditions"]["columns"] == ["source"]
    assert request["categories"]["source"] == sorted([str(a), str(b)])
    assert set(sources[:20]) == {0.0} and set(sources[20:]) == {1.0}

    result = cli("evaluate", "--synthetic", str(tmp_path / "drawn.npz"), "--data", str(data), "--out",
                 str(tmp_path / "report"), "--model", str(run), timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    rows = {r["source"]: r for r in metrics["within_source"]}
    assert set(rows) <= {str(a), str(b)} and rows
    for r in rows.values():   # the label-matched set, within each source: its signals, TSTR and both judges
        assert r["synthetic"]["label_matched"] == r["real_test"]
        assert r["tstr_mae"] > 0 and r["trtr_mae"] > 0 and set(r["judges"]) == {"linear", "cnn"}
    checks = [v["check"] for v in metrics["verdicts"]]
    assert any(c.startswith(f"judge cnn within {next(iter(rows))}") for c in checks)
    assert "TSTR / TRTR MAE (years)" in (tmp_path / "report" / "report.md").read_text()
