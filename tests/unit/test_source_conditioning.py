"""Categorical conditions: prep codes and counts them; the model takes them one-hot, the same in
TensorFlow and numpy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohorts import two_devices
from conftest import SMOKE
from cvae.config import load_config
from data_prep.common import UserError

CATEGORICAL = ["data.categories=[source, site]", "model.conditions=[age, source]"]


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

    from cvae.model.conditions import Conditions
    spec = Conditions(["age", "source", "bmi"], [50.0, 0.0, 25.0], [10.0, 1.0, 5.0], {"source": ["a", "b", "c"]})
    raw = np.array([[40.0, 2, 30.0], [60.0, 0, 20.0]], np.float32)
    assert spec.width == 5 and spec.column("bmi") == 4
    np.testing.assert_array_equal(spec.numeric_mask(), [1, 0, 0, 0, 1])   # train.condition_noise: numeric only
    expected = [[-1, 0, 0, 1, 1], [1, 1, 0, 0, -1]]
    np.testing.assert_allclose(spec.encode(raw), expected)
    np.testing.assert_allclose(spec.encode_tf(tf.constant(raw)).numpy(), expected)
    table = pd.DataFrame({"age": [40.0, 60.0], "source": ["c", "a"], "bmi": [30.0, 20.0]})
    np.testing.assert_array_equal(spec.raw(table), raw)
