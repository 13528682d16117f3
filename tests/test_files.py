"""Atomic writes never follow a planted symlink or leave partial files; directory locks refuse a second writer."""
import os

import numpy as np
import pytest

from conftest import SMOKE, cli
from data_prep.errors import UserError
from data_prep.files import lock_directory, temp_beside, write_text_atomic


def test_atomic_write_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "out.json"
    target.symlink_to(victim)
    write_text_atomic(target, "new")
    assert victim.read_text() == "precious"
    assert not target.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim.txt"]


def test_temp_names_are_unique_and_created_exclusively(tmp_path):
    names = {temp_beside(tmp_path / "x.tfrecord") for _ in range(50)}
    assert len(names) == 50 and all(p.is_file() and p.name.startswith(".x.tfrecord.") for p in names)
    mode = os.stat(next(iter(names))).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask   # what a plain open() would give, readable by the group on shared clusters


def test_a_directory_lock_refuses_a_second_holder_until_released(tmp_path):
    with lock_directory(tmp_path, ".lock", "test"):
        with pytest.raises(UserError, match="in use by another test"):
            lock_directory(tmp_path, ".lock", "test")
    lock_directory(tmp_path, ".lock", "test").close()


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
