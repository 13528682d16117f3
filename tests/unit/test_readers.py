"""Readers for the public age-labelled sets and per-record metadata, on small files written here in each layout."""
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import SMOKE
from cvae.config import load_config
from data_prep.common import UserError
from data_prep.sources import open_files

FS = 125.0


def pulse(seconds: float, fs: float, hr: float = 72.0, seed: int = 0) -> np.ndarray:
    """A PPG-like pulse train: fast upstroke, slower decay, a dicrotic bump, a little noise."""
    t = np.arange(int(seconds * fs)) / fs
    phase = (t * hr / 60.0) % 1.0
    beat = np.exp(-((phase - 0.15) / 0.06) ** 2) + 0.4 * np.exp(-((phase - 0.45) / 0.1) ** 2)
    return beat + 0.01 * np.random.default_rng(seed).standard_normal(len(t))


def matlab_cells(f: h5py.File, name: str, texts: list[str]) -> None:
    """A MATLAB v7.3 cell array of char: object references into #refs#, each uint16 with MATLAB_class 'char'."""
    refs = f.require_group("#refs#")
    out = np.empty((1, len(texts)), dtype=h5py.ref_dtype)
    for i, text in enumerate(texts):
        ds = refs.create_dataset(f"{name}{i}", data=np.array([[ord(c)] for c in text], np.uint16))
        ds.attrs["MATLAB_class"] = np.bytes_("char")
        out[0, i] = ds.ref
    f["Subset"].create_dataset(name, data=out).attrs["MATLAB_class"] = np.bytes_("cell")


def test_pulsedb_subset_is_read_in_chunks_with_its_labels(tmp_path):
    n = 10
    ppg = np.stack([pulse(10, FS, seed=i)[:1250] for i in range(n)])
    signals = np.stack([np.zeros_like(ppg), ppg, 100 + ppg], axis=1)          # n x 3 x 1250 in MATLAB
    path = tmp_path / "Train_Subset.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        group = f.create_group("Subset")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        group.create_dataset("Signals", data=signals.transpose(2, 1, 0))     # HDF5 holds the dimensions reversed
        group.create_dataset("Age", data=np.arange(30.0, 30.0 + n)[None])
        group.create_dataset("Height", data=np.full((1, n), np.nan))         # NaN for MIMIC subjects
        matlab_cells(f, "Gender", ["M", "F"] * (n // 2))
        matlab_cells(f, "Subject", [f"p{i // 2:06d}" for i in range(n)])
    cfg = load_config(SMOKE, ["data.length_policy=crop"])
    from data_prep import sources
    sources.CHUNK, chunk = 4, sources.CHUNK                                   # several chunks from 10 rows
    try:
        source = open_files([str(path)], cfg, None, tmp_path / "w")
    finally:
        sources.CHUNK = chunk
    table = source.rows()
    assert source.labels == ["age", "sex"]            # height is NaN: not a label this source has
    assert table["age"].tolist() == list(np.arange(30.0, 30.0 + n))
    assert table["sex"].tolist() == [0.0, 1.0] * (n // 2)
    assert table["subject_id"].tolist()[:4] == ["p000000", "p000000", "p000001", "p000001"]
    assert np.allclose(source.signals(table), ppg[:, :1024], atol=1e-6)       # channel 2 (PPG_F), cropped


def test_pulsedb_file_that_is_not_one_is_a_clear_error(tmp_path):
    path = tmp_path / "x.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("y", data=[1])
    with pytest.raises(UserError, match="no struct 'Subset'"):
        open_files([str(path)], load_config(SMOKE), None, tmp_path / "w")


def pulsedb_file(path, n: int = 4, signals=None) -> None:
    """A minimal PulseDB subset file; `signals(group, data)` makes Subset/Signals (default: a plain dataset)."""
    data = np.stack([np.zeros((n, 1250)), np.stack([pulse(10, FS, seed=i)[:1250] for i in range(n)]),
                     np.zeros((n, 1250))], axis=1).transpose(2, 1, 0)
    with h5py.File(path, "w") as f:
        group = f.create_group("Subset")
        (signals or (lambda g, d: g.create_dataset("Signals", data=d)))(group, data)
        group.create_dataset("Age", data=np.arange(30.0, 30.0 + n)[None])


def test_pulsedb_links_virtual_datasets_and_external_storage_are_refused_without_reading_them(tmp_path):
    other = tmp_path / "elsewhere.h5"
    pulsedb_file(other)
    with h5py.File(other, "a") as f:
        f["plain"] = f["Subset/Signals"][()]

    def external_link(group, data):
        group["Signals"] = h5py.ExternalLink(str(other), "/Subset/Signals")

    def soft_link(group, data):
        group.file["elsewhere"] = h5py.ExternalLink(str(other), "/plain")
        group["Signals"] = h5py.SoftLink("/elsewhere")

    def virtual(group, data):
        layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
        layout[:] = h5py.VirtualSource(str(other), "plain", shape=data.shape)
        group.create_virtual_dataset("Signals", layout)

    def external_storage(group, data):
        raw = tmp_path / "signals.raw"
        data.astype("<f8").tofile(raw)
        group.create_dataset("Signals", shape=data.shape, dtype="<f8", external=[(str(raw), 0, h5py.h5f.UNLIMITED)])

    for make, needle in ((external_link, f"/Subset/Signals is an external link to {other}:/Subset/Signals; refused"),
                         (soft_link, "/Subset/Signals is a soft link to /elsewhere; refused"),
                         (virtual, "/Subset/Signals is a virtual dataset (its data lives in other files); refused"),
                         (external_storage, "/Subset/Signals keeps its data in external file")):
        path = tmp_path / f"{make.__name__}.mat"
        pulsedb_file(path, signals=make)
        with pytest.raises(UserError, match=re.escape(needle)):
            open_files([str(path)], load_config(SMOKE, ["data.length_policy=crop"]), None, tmp_path / "w").rows()
    plain = tmp_path / "plain.mat"
    pulsedb_file(plain)
    cfg = load_config(SMOKE, ["data.length_policy=crop"])
    assert len(open_files([str(plain)], cfg, None, tmp_path / "w").rows()) == 4


def test_vitaldb_case_files_with_the_clinical_table(tmp_path):
    import vitaldb
    for case, age in ((1, 45), (2, 70)):
        vf = vitaldb.VitalFile()
        vf.add_track("SNUADC/PLETH", [{"dt": 1.6e9, "val": (2000 + 300 * pulse(40, 500.0, seed=case)).astype(
            np.float32)}], srate=500.0)
        vf.add_track("SNUADC/ECG_II", [{"dt": 1.6e9, "val": np.zeros(20000, np.float32)}], srate=500.0)
        vf.to_vital(str(tmp_path / f"{case:04d}.vital"))
    pd.DataFrame({"caseid": [1, 2], "age": [45, 70], "sex": ["M", "F"], "height": [170.0, 160.0]}).to_csv(
        tmp_path / "clinical.csv", index=False)
    source = open_files([str(tmp_path)], load_config(SMOKE), None, tmp_path / "w", tmp_path / "clinical.csv")
    table = source.rows()
    assert source.labels == ["age", "sex", "height"]
    assert sorted(table["subject_id"].unique()) == ["1", "2"]
    assert table.groupby("subject_id")["age"].first().tolist() == [45.0, 70.0]
    assert source.describe()["records"][0]["fs"] == 500.0
    assert (table["_reason"] == "").all()
    x = source.signals(table.iloc[:1])[0]
    assert abs(x.mean()) < 0.1 * x.std()              # the offset of 2000 is gone


def test_mimic_matched_multi_segment_records_take_labels_by_subject(tmp_path):
    import wfdb
    x = 50 + 20 * pulse(30, FS)
    n = len(x)
    wfdb.wrsamp("3314959_0001", fs=FS, units=["NU", "mV"], sig_name=["PLETH", "II"], p_signal=np.c_[x, x / 3],
                fmt=["16", "16"], write_dir=str(tmp_path))
    wfdb.wrsamp("3314959_0002", fs=FS, units=["NU"], sig_name=["PLETH"], p_signal=x[:, None], fmt=["16"],
                write_dir=str(tmp_path))
    (tmp_path / "3314959_layout.hea").write_text("3314959_layout 2 125 0\n~ 0 1(0)/NU 16 0 0 0 0 PLETH\n"
                                                 "~ 0 1(0)/mV 16 0 0 0 0 II\n")
    (tmp_path / "p000020-2183-04-28-17-47.hea").write_text(
        f"p000020-2183-04-28-17-47/4 2 125 {2 * n + 1000}\n3314959_layout 0\n3314959_0001 {n}\n~ 1000\n"
        f"3314959_0002 {n}\n")
    pd.DataFrame({"subject_id": [20], "age": [63], "sex": ["F"]}).to_csv(tmp_path / "subjects.csv", index=False)
    source = open_files([str(tmp_path)], load_config(SMOKE), None, tmp_path / "w", tmp_path / "subjects.csv")
    assert [r["record"] for r in source.describe()["records"]] == ["p000020-2183-04-28-17-47"]   # not its segments
    table = source.rows()
    record = source.describe()["records"][0]
    assert record["splits"] == 1                       # the 8 s gap between segments splits the recording
    assert set(table["subject_id"]) == {"20"} and set(table["age"]) == {63.0}
    # each 30 s segment minus 2 s edges gives 2 windows of 8.2 s; none spans the gap
    assert len(table) == 2 * int((n / FS - 4) // (1024 / FS))


def test_wfdb_records_with_a_mat_signal_file_are_read_as_wfdb(tmp_path):
    """The PhysioNet Challenge layout (rec.hea + rec.mat), written by wfdb itself, in a folder or named directly."""
    import wfdb
    x = 50 + 20 * pulse(30, FS)
    (tmp_path / "dat").mkdir()
    wfdb.wrsamp("a103l", fs=FS, units=["NU"], sig_name=["PLETH"], p_signal=x[:, None], fmt=["16"],
                write_dir=str(tmp_path / "dat"))
    (tmp_path / "mat").mkdir()
    from wfdb.io.convert.matlab import wfdb_to_mat
    cwd = Path.cwd()
    os.chdir(tmp_path / "mat")   # wfdb_to_mat writes a103lm.mat + a103lm.hea into the working directory
    try:
        wfdb_to_mat(str(tmp_path / "dat" / "a103l"))
    finally:
        os.chdir(cwd)
    assert sorted(q.name for q in (tmp_path / "mat").iterdir()) == ["a103lm.hea", "a103lm.mat"]
    pd.DataFrame({"record": ["a103lm"], "age": [58]}).to_csv(tmp_path / "labels.csv", index=False)
    for given in (tmp_path / "mat", tmp_path / "mat" / "a103lm.mat"):
        source = open_files([str(given)], load_config(SMOKE), None, tmp_path / "w", tmp_path / "labels.csv")
        assert [r["record"] for r in source.describe()["records"]] == ["a103lm"]
        assert len(source.rows()) == int((30 - 4) // (1024 / FS))


def test_recordings_at_several_rates_in_one_prep_with_an_fs_column(tmp_path):
    rates = {"r100": 100.0, "r200": 200.0, "r500": 500.0}
    for name, fs in rates.items():
        pd.DataFrame({"ppg": pulse(30, fs)}).to_csv(tmp_path / f"{name}.csv", index=False)
    pd.DataFrame({"record": list(rates), "age": [30, 50, 70], "fs": list(rates.values())}).to_csv(
        tmp_path / "labels.csv", index=False)
    source = open_files([str(tmp_path)], load_config(SMOKE), None, tmp_path / "w")
    assert source.labels == ["age"]
    assert {r["record"]: r["fs"] for r in source.describe()["records"]} == rates
    table = source.rows()
    signals = source.signals(table)
    beats_per_window = [np.sum(np.diff(np.sign(np.diff(s))) < 0) for s in signals]   # the same pulse at every rate
    assert len(set(table["subject_id"])) == 3 and max(beats_per_window) - min(beats_per_window) <= 4
    with pytest.raises(UserError, match="data.labels are missing"):
        open_files([str(tmp_path)], load_config(SMOKE, ["data.labels=[age, bmi]"]), None, tmp_path / "w")


def test_a_wrapped_pleth_in_wfdb_format_212_is_unwrapped(tmp_path):
    """A bedside monitor's 12-bit PLETH (format 212, 250 Hz) whose pulse wraps past the top of the ADC range
    every beat: the wraps are undone, counted in the manifest, and no window is quarantined as clipped."""
    import wfdb

    from data_prep.prep import prepare
    counts = np.round(1800 + 2600 * pulse(120, 250.0, hr=70)).astype(np.int64)   # peaks above 4095
    digital = (counts % 4096 - 2048).astype(np.int64)[:, None]
    wfdb.wrsamp("icu", fs=250, units=["NU"], sig_name=["PLETH"], d_signal=digital, fmt=["212"], adc_gain=[1.0],
                baseline=[0], write_dir=str(tmp_path))
    pd.DataFrame({"record": ["icu"], "age": [61]}).to_csv(tmp_path / "labels.csv", index=False)
    cfg = load_config(SMOKE, ["data.val_fraction=0", "data.test_fraction=0"])
    manifest = prepare(cfg, tmp_path / "data", open_files([str(tmp_path)], cfg, None, tmp_path / "data"))
    (record,) = manifest.source["records"]
    assert record["unwrapped"] == np.count_nonzero(np.diff(counts // 4096)) > 200
    assert manifest.quarantine["total"] == 0 and manifest.splits["train"].count == record["windows"] >= 12
