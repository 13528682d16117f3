"""Sources through the CLI and the pickle sandbox: reference pickles, a malicious pickle,
validation classes, kill-and-resume of prep."""
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from cohorts import LABELS, small_cohort
from conftest import REPO, SMOKE, cli
from cvae.config import load_config
from data_prep.common import UserError
from data_prep.manifest import load_manifest, verify
from data_prep.prep import prepare
from data_prep.readers.safe_pickle import RestrictedUnpickler
from data_prep.sources import open_files, write_reference_pickle


def test_reference_trio_written_by_the_simulator_round_trips(tmp_path):
    ref = tmp_path / "ref"
    assert cli("prep", "--config", str(SMOKE), "--out", str(ref), "--as-reference-pickles").returncode == 0
    counts = {}
    for name in ("train_db_1p", "validation_db_1p", "test_db_1p"):
        with open(ref / f"{name}.pickle", "rb") as fh:
            obj = RestrictedUnpickler(fh).load()
        assert isinstance(obj["labels"], pd.DataFrame) and "age" in obj["labels"]
        counts[name] = len(obj["samples"])
    result = cli("prep", "--config", str(SMOKE), "--out", str(tmp_path / "data"), "--source", str(ref))
    assert result.returncode == 0, result.stderr[-2000:]
    m = load_manifest(tmp_path / "data")
    assert m.source["given_split"] is True
    q = pd.read_csv(tmp_path / "data" / "quarantine.csv")
    for split, name in (("train", "train_db_1p"), ("val", "validation_db_1p"), ("test", "test_db_1p")):
        assert m.splits[split].count + (q["split"] == split).sum() == counts[name]


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    bad = tmp_path / "evil.pickle"
    bad.write_bytes(pickle.dumps({"labels": pd.DataFrame({"age": [40.0]}), "samples": [Exploit()]}))
    result = cli("prep", "--config", str(SMOKE), "--out", str(tmp_path / "out"), "--source", str(bad))
    assert result.returncode == 2
    assert "refused to load" in result.stderr and ("posix.system" in result.stderr or "os.system" in result.stderr)
    assert not marker.exists()


def test_killed_prep_resumes_without_redoing_finished_shards(tmp_path):
    args = ["prep", "--config", str(SMOKE), "simulate.n_subjects=400", "data.train_shards=8", "data.workers=1"]
    reference = tmp_path / "ref"
    assert cli(*args, "--out", str(reference)).returncode == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", *args, "--out", str(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not len(list(out.glob("*.done.json"))) >= 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name for p in out.glob("*.done.json")}
    assert done and not (out / "manifest.json").exists()
    result = cli(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"({len(done)} resumed)" in result.stderr
    a, b = load_manifest(reference), load_manifest(out)
    assert [s.sha256 for s in a.splits["train"].shards] == [s.sha256 for s in b.splits["train"].shards]
    assert verify(out)["records"] == sum(a.splits[s].count for s in ("train", "val", "test"))
    assert not list(out.glob("*.tmp"))


def test_single_pickle_with_mapped_labels(tmp_path):
    cfg, signals, rows = small_cohort()
    labels = rows[LABELS].rename(columns={"age": "Age", "sex": "Gender"})
    labels["Gender"] = np.where(rows["sex"] == 1, "F", "M")
    write_reference_pickle(tmp_path / "study.pickle", signals, labels)
    with pytest.raises(UserError, match=r"no 'age' label .*data.label_map"):
        open_files([str(tmp_path / "study.pickle")], cfg, None, tmp_path / "w")
    cfg = load_config(SMOKE, ["data.label_map={Age: age, Gender: sex}"])
    source = open_files([str(tmp_path / "study.pickle")], cfg, None, tmp_path / "w")
    table = source.rows()
    assert np.allclose(table["age"], rows["age"]) and np.array_equal(table["sex"], rows["sex"])
    assert np.array_equal(source.signals(table.iloc[[3, 1]]), signals[[3, 1]])


def test_every_bad_input_class_is_quarantined_with_its_reason(tmp_path):
    cfg, signals, rows = small_cohort(n_subjects=40)
    samples = [s.copy() for s in signals]
    labels = rows[["subject_id"] + LABELS].copy()
    samples[0][5] = np.nan
    samples[1] = samples[1][:900]
    samples[2][:] = 0.3
    samples[3] = np.clip(samples[3], None, np.percentile(samples[3], 70))
    labels.loc[4, "age"] = np.nan
    labels.loc[5, "hr"] = 400.0
    samples[7] = samples[6].copy()
    write_reference_pickle(tmp_path / "bad.pickle", np.array(samples, dtype=object), labels)
    out = tmp_path / "data"
    m = prepare(load_config(SMOKE, ["data.max_bad_fraction=0.2"]), out,
                open_files([str(tmp_path / "bad.pickle")], cfg, None, out))
    table = pd.read_csv(out / "quarantine.csv", keep_default_na=False).set_index("row")
    assert table["reason"].to_dict() == {0: "non_finite", 1: "wrong_length", 2: "flat", 3: "clipped", 4: "bad_label",
                                         5: "bad_label", 7: "duplicate"}
    assert table.loc[[4, 5], "detail"].tolist() == ["age missing or not a number", "hr=400 outside 25-250"]
    assert m.quarantine["total"] == 7 and m.quarantine["by_reason"]["duplicate"] == 1
    crop = prepare(load_config(SMOKE, ["data.max_bad_fraction=0.2", "data.length_policy=resample"]),
                   tmp_path / "d2", open_files([str(tmp_path / "bad.pickle")],
                                               load_config(SMOKE, ["data.length_policy=resample"]), None,
                                               tmp_path / "d2"))
    assert "wrong_length" not in crop.quarantine["by_reason"]


def test_unit_mismatch_is_caught_and_fixable(tmp_path):
    cfg, signals, rows = small_cohort()
    labels = rows[["subject_id"] + LABELS].copy()
    labels["height"] /= 100.0
    write_reference_pickle(tmp_path / "m.pickle", signals, labels)
    with pytest.raises(UserError, match=r"'height' of .* outside the plausible 100-230 for 100% of rows "
                                        r"\(median 1\.\d+\).* data.label_scale.height"):
        open_files([str(tmp_path / "m.pickle")], cfg, None, tmp_path / "w")
    fixed = load_config(SMOKE, ["data.label_scale={height: 100}"])
    table = open_files([str(tmp_path / "m.pickle")], fixed, None, tmp_path / "w").rows()
    assert np.allclose(table["height"], rows["height"])
