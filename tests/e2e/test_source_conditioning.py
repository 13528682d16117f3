"""A source-conditioned model, trained by Horovod, generates by source and is judged per source."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cohorts import two_devices
from conftest import SMOKE, cli, horovodrun

CATEGORICAL = ["data.categories=[source, site]", "model.conditions=[age, source]"]


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
