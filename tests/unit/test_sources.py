"""File readers in-process: arrays with label tables, raw recordings, CSV time columns, per-record verdicts."""

import numpy as np
import pandas as pd
import pytest

from cohorts import LABELS, small_cohort
from conftest import SMOKE
from cvae.config import load_config
from data_prep.common import UserError
from data_prep.prep import prepare
from data_prep.sources import SIGNALS, open_files


def test_npz_and_npy_with_csv_and_parquet(tmp_path):
    cfg, signals, rows = small_cohort()
    np.savez(tmp_path / "a.npz", signals=signals, subject_id=rows["subject_id"].to_numpy(str),
             **{c: rows[c].to_numpy() for c in LABELS})
    np.save(tmp_path / "b.npy", signals)
    rows[["subject_id"] + LABELS].to_csv(tmp_path / "b.csv", index=False)
    np.save(tmp_path / "c.npy", signals[:10])
    rows[["subject_id"] + LABELS].iloc[:10].to_parquet(tmp_path / "c.parquet")
    for name, n in (("a.npz", len(signals)), ("b.npy", len(signals)), ("c.npy", 10)):
        source = open_files([str(tmp_path / name)], cfg, None, tmp_path / "w")
        table = source.rows()
        assert len(table) == n and (table["_reason"] == "").all()
        assert np.array_equal(source.signals(table), signals[:n])
        assert list(table["subject_id"]) == list(rows["subject_id"][:n])
        in_place = name.endswith(".npy")        # float32 [N, 1024]: read where it lies, not copied
        assert (source.path == tmp_path / name) == in_place and (tmp_path / "w" / SIGNALS).exists() != in_place
        (tmp_path / "w" / SIGNALS).unlink(missing_ok=True)
    np.save(tmp_path / "d.npy", signals.astype(np.float64))     # another dtype: converted into the copy
    rows[["subject_id"] + LABELS].to_csv(tmp_path / "d.csv", index=False)
    source = open_files([str(tmp_path / "d.npy")], cfg, None, tmp_path / "w")
    assert source.path == tmp_path / "w" / SIGNALS and np.array_equal(source.signals(source.rows()), signals)


def dominant_hz(x: np.ndarray, fs: float) -> float:
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    return float(np.fft.rfftfreq(len(x), 1 / fs)[np.argmax(spectrum)])


def test_raw_recordings_resampled_and_windowed(tmp_path):
    import wfdb
    cfg, signals, rows = small_cohort(n_subjects=2, per=1)
    t250 = np.arange(250 * 20) / 250.0                      # 20 s at 250 Hz
    x = np.interp(t250, np.arange(signals.shape[1] * 3) / 125.0, np.tile(signals[0], 3))
    pd.DataFrame({"time": t250, "ppg": x}).to_csv(tmp_path / "rec1.csv", index=False)
    wfdb.wrsamp("rec2", fs=50, units=["NU"], sig_name=["PLETH"], p_signal=x[::5][:, None].astype(np.float64),
                fmt=["16"], write_dir=str(tmp_path))
    pd.DataFrame({"record": ["rec1", "rec2"], "age": [40, 70], "sex": [0, 1], "height": [170, 160],
                  "weight": [70, 60], "bmi": [24.2, 23.4], "hr": [70, 75]}).to_csv(tmp_path / "labels.csv", index=False)
    cfg = load_config(SMOKE, ["data.window_overlap=0.5"])
    source = open_files([str(tmp_path)], cfg, None, tmp_path / "w")
    table = source.rows()
    # 20 s, minus 2 s of filter edge at each end, at 125 Hz = 2000 samples -> windows of 1024 every 512: 2 each.
    assert list(table.groupby("subject_id").size()) == [2, 2]
    assert [r["fs"] for r in source.describe()["records"]] == [250.0, 50.0]   # time column; WFDB header
    for got in source.signals(table):
        assert abs(dominant_hz(got, 125.0) - dominant_hz(signals[0], 125.0)) < 0.2
    with pytest.raises(UserError, match="--fs"):
        pd.DataFrame({"ppg": x}).to_csv(tmp_path / "rec1.csv", index=False)
        open_files([str(tmp_path / "rec1.csv")], cfg, None, tmp_path / "w")


def test_csv_time_columns_set_the_rate_and_are_never_the_signal(tmp_path):
    cfg, signals, rows = small_cohort(n_subjects=2, per=1)
    x = np.tile(signals[0], 3)
    pd.DataFrame({"record": ["rec"], "age": [40], "sex": [0]}).to_csv(tmp_path / "labels.csv", index=False)
    rec = tmp_path / "rec.csv"
    # a timestamp in milliseconds first: taking it as the signal would give a monotonic ramp
    pd.DataFrame({"timestamp": 1.7e12 + np.arange(len(x)) * 8.0, "ppg": x}).to_csv(rec, index=False)
    source = open_files([str(rec)], cfg, None, tmp_path / "w")
    got = source.signals(source.rows())
    assert source.describe()["records"][0]["fs"] == 125.0
    assert abs(dominant_hz(got[0], 125.0) - dominant_hz(signals[0], 125.0)) < 0.2
    noise = np.random.default_rng(0).standard_normal(len(x))
    pd.DataFrame({"t": np.arange(len(x)) / 125.0, "red": noise, "ir": 3 * x + 7}).to_csv(rec, index=False)
    with pytest.raises(UserError, match=r"several numeric columns \(red, ir\); set data.raw_column"):
        open_files([str(rec)], cfg, None, tmp_path / "w")
    with pytest.raises(UserError, match="data.raw_column='t' is a time axis"):
        open_files([str(rec)], load_config(SMOKE, ["data.raw_column=t"]), None, tmp_path / "w")
    source = open_files([str(rec)], load_config(SMOKE, ["data.raw_column=ir"]), None, tmp_path / "w")
    assert abs(dominant_hz(source.signals(source.rows())[0], 125.0) - dominant_hz(signals[0], 125.0)) < 0.2


def test_labels_and_recordings_are_judged_per_record(tmp_path, caplog):
    cfg, signals, rows = small_cohort(n_subjects=20, per=3, seed=5)
    folder = tmp_path / "rec"
    folder.mkdir()
    for i in range(20):
        x = signals[3 * i:3 * i + 3].ravel()
        t = np.arange(len(x)) / 125.0
        if i == 3:       # the same pulse sampled at 10 Hz: below the 18 Hz minimum (hr_max 180 bpm)
            x, t = np.interp(np.arange(0, t[-1], 0.1), t, x), np.arange(0, t[-1], 0.1)
        pd.DataFrame({"time": t, "ppg": x}).to_csv(folder / f"r{i:02d}.csv" if i < 19 else folder / "orphan.csv",
                                                   index=False)
    ages = [250, "forty", "", *rows["age"].iloc[9:57:3].round(1)]
    pd.DataFrame({"record": [f"r{i:02d}" for i in range(19)] + ["ghost"], "age": ages[:19] + [50]}).to_csv(
        folder / "labels.csv", index=False)
    out = tmp_path / "data"
    with caplog.at_level("WARNING"):
        source = open_files([str(folder)], cfg, None, out)
    m = prepare(load_config(SMOKE, ["data.max_bad_fraction=0.6"]), out, source)   # joins of tiled windows: clipped
    q = pd.read_csv(out / "quarantine.csv", keep_default_na=False)
    bad = q[q["reason"] == "bad_label"]
    assert sorted(set(bad["subject_id"])) == ["r00", "r01", "r02"]
    assert set(bad["detail"]) == {"age=250 outside 0-120", "age missing or not a number"}
    assert m.source["skipped"] == {"recordings below 18 Hz": {"count": 1, "first": ["r03.csv (10 Hz)"]},
                                   "recordings without a label row": {"count": 1, "first": ["orphan.csv"]},
                                   "label rows without a recording": {"count": 1, "first": ["ghost"]}}
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "orphan.csv" in warnings[0] and "ghost" in warnings[0] and "r03.csv" in warnings[0]

    assert len(m.source["records"]) == 18 and m.splits["train"].count > 0

    months = pd.read_csv(folder / "labels.csv")
    months["age"] = pd.to_numeric(months["age"], errors="coerce") * 12
    months.to_csv(folder / "labels.csv", index=False)
    with pytest.raises(UserError, match=r"label 'age' of .* for \d+% of rows .*wrong unit\?"):
        open_files([str(folder)], cfg, None, tmp_path / "w2")
    pd.DataFrame({"record": ["r04", "../outside/r05"], "age": [40, 50]}).to_csv(folder / "labels.csv", index=False)
    with pytest.raises(UserError, match=r"record '../outside/r05' is not a plain record name"):
        open_files([str(folder)], cfg, None, tmp_path / "w3")
