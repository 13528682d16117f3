"""Atomic writes never follow a planted symlink or leave partial files; directory locks refuse a second holder."""
import os

import pytest

from data_prep.common import UserError, lock_directory, temp_beside, write_text_atomic


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
