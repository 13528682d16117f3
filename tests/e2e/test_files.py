"""Through the CLI: a second prep on a held output directory is refused; overrides after a source stay overrides."""

import numpy as np

from conftest import SMOKE, cli
from data_prep.common import lock_directory


def test_prep_refuses_an_output_directory_another_prep_holds(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    with lock_directory(out, ".prep.lock", "ppg-cvae prep (--out)"):
        result = cli("prep", "--config", str(SMOKE), "--out", str(out))
    assert result.returncode == 2 and "in use by another ppg-cvae prep" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".prep.lock"]


def test_overrides_after_a_source_are_overrides(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(1024) / 125.0
    signals = np.sin(2 * np.pi * 1.2 * t)[None] + 0.05 * rng.standard_normal((40, 1024))
    np.savez(tmp_path / "a.npz", signals=signals.astype(np.float32), age=rng.uniform(20, 80, 40))
    result = cli("prep", "--config", str(SMOKE), "--out", str(tmp_path / "data"), "--source", str(tmp_path / "a.npz"),
                 "data.labels=[age]")
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"age"' in (tmp_path / "data" / "manifest.json").read_text()
