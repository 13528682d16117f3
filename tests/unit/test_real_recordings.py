"""Real recordings (the shared real-PPG collection, read in place): DC offsets, clipping, three rates, polarity and
filter edges, checked against an independent clean-beat test. Skipped where the collection is absent."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from cvae.beats import clean_beat_share, clean_beats
from cvae.config import load_config
from data_prep.manifest import load_manifest, shard_paths
from data_prep.prep import prepare
from data_prep.real_ppg_labels import labels_from_index
from data_prep.shards import read_arrays
from data_prep.sources import open_files

REAL = Path(os.environ.get("PPG_REAL_DATA", REPO.parent / "shared" / "data" / "real-ppg"))
pytestmark = pytest.mark.skipif(not (REAL / "INDEX.json").is_file(),
                                reason=f"the real-PPG collection is not at {REAL} (set PPG_REAL_DATA)")
CONFIG = REPO / "configs" / "real.yaml"


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.csv"
    labels_from_index(json.loads((REAL / "INDEX.json").read_text())).to_csv(path, index=False)
    return path


def cfg(*overrides):
    return load_config(CONFIG, ["data.workers=1", "data.max_bad_fraction=0.9", *overrides])


def read(names, labels, tmp_path, *overrides):
    return open_files([str(REAL / f"{n}.csv") for n in names], cfg(*overrides), None, tmp_path / "w", labels)


def test_dc_offset_wrist_recordings_give_pulsatile_windows(labels, tmp_path):
    raw = pd.read_csv(REAL / "aurora_a000.csv")["ppg"]
    assert raw.median() < -100_000                    # the sensor's offset, as recorded
    source = read([f"aurora_a00{i}" for i in range(6)], labels, tmp_path)
    windows = source.signals(source.rows())
    normalized = windows / np.abs(windows).max(axis=1, keepdims=True)
    assert len(windows) >= 6
    assert np.all(np.abs(normalized.mean(axis=1)) < 0.2) and np.all(normalized.std(axis=1) > 0.2)
    assert clean_beat_share(windows, 125.0) >= 0.9


def test_wrapped_recordings_are_unwrapped_and_keep_their_clean_windows(labels, tmp_path):
    """mwppg_053 and mwppg_078 wrap around the top of their 16-bit range (30 and 36 one-sample steps of ~65,000
    counts). Unwrapped, none of their windows is `clipped`, more of them are kept than without the repair, and every
    kept window has clean beats and no jump; what is still refused are stretches where the level itself swings
    across the whole range over tens of milliseconds (judged `low_quality` by the beat check)."""
    names = ["mwppg_053", "mwppg_078", "mwppg_001", "mwppg_002"]
    kept, reasons = {}, {}
    for unwrap in ("true", "false"):
        out = tmp_path / f"data-{unwrap}"
        config = cfg(f"condition.unwrap={unwrap}")
        manifest = prepare(config, out, open_files([str(REAL / f"{n}.csv") for n in names], config, None, out,
                                                   labels))
        q = pd.read_csv(out / "quarantine.csv")
        reasons[unwrap] = q.groupby("subject_id")["reason"].agg(set).to_dict()
        windows = {r["record"]: r for r in manifest.source["records"]}
        wrapped = q["subject_id"].isin(["mwppg:53", "mwppg:78"]).sum()
        kept[unwrap] = sum(windows[n]["windows"] for n in names[:2]) - wrapped
        if unwrap == "true":
            assert [windows[n]["unwrapped"] for n in names] == [30, 36, 0, 0]
            signals = np.concatenate([read_arrays(shard_paths(out, manifest, s), ["age"], 1024, "none")[0]
                                      for s in ("train", "val", "test")])
            assert clean_beat_share(signals, 125.0) >= 0.9
            assert np.abs(np.diff(signals, axis=1)).max() < 0.5   # no rail-to-rail jump survived
    assert "clipped" in reasons["false"]["mwppg:53"] | reasons["false"]["mwppg:78"]
    assert not any("clipped" in r for r in reasons["true"].values())
    assert kept["true"] > kept["false"]


def test_three_sources_at_three_rates_in_one_prep(labels, tmp_path):
    names = ["santiago_ppg_subj_01", "santiago_ppg_subj_02", "mwppg_003", "mwppg_004", "aurora_o000", "aurora_a001"]
    manifest = prepare(cfg(), tmp_path / "data", read(names, labels, tmp_path))
    assert sorted({r["fs"] for r in manifest.source["records"]}) == [100.0, 200.0, 500.0]
    assert len(manifest.quarantine["by_source"]) == 3
    assert manifest.source["conditioning"]["band_pass"].startswith("cheby2 order 4")
    limit = manifest.source["conditioning"]["band_limit"]   # what generation from this data will apply
    assert (limit["filter"], limit["high_hz"]) == (cfg().condition.filter, cfg().condition.high_hz)
    assert (tmp_path / "data" / "quality.png").stat().st_size > 10_000
    assert list(load_manifest(tmp_path / "data").labels) == ["age", "sex"]   # what the source has


def test_an_inverted_recording_is_turned_upright(labels, tmp_path):
    folder = tmp_path / "flipped"
    folder.mkdir()
    x = pd.read_csv(REAL / "aurora_o000.csv")
    (-x).to_csv(folder / "aurora_o000.csv", index=False)
    upright = read(["aurora_o000"], labels, tmp_path)
    flipped = open_files([str(folder / "aurora_o000.csv")], cfg(), None, tmp_path / "w2", labels)
    assert [r["inverted"] for r in flipped.describe()["records"]] == [True]
    assert [r["inverted"] for r in upright.describe()["records"]] == [False]
    assert np.allclose(flipped.signals(flipped.rows()), upright.signals(upright.rows()), atol=1e-3)
    kept = read(["aurora_o000"], labels, tmp_path, "condition.polarity=keep")
    assert clean_beats(kept.signals(kept.rows())[0], 125.0)[0] >= 0.8


def test_the_first_window_has_no_filter_or_resampling_edge(labels, tmp_path):
    from scipy.signal import resample_poly
    raw = pd.read_csv(REAL / "aurora_a002.csv")["ppg"].to_numpy(np.float64)
    naive = resample_poly(raw, 1, 4)[:1024]            # 500 -> 125 Hz as it comes: the offset makes an edge spike
    naive = naive - np.median(naive)
    assert np.abs(naive[:62]).max() > 10 * np.abs(naive[62:]).max()
    source = read(["santiago_ppg_subj_03", "mwppg_005", "aurora_o001", "aurora_a002"], labels, tmp_path)
    first = source.signals(source.rows().groupby("subject_id").head(1))
    assert np.all(np.abs(first[:, :62]).max(axis=1) <= 1.05 * np.abs(first[:, 62:]).max(axis=1))
