"""Atomic file writes: write beside the target under a `.tmp` name, then rename over it."""
from __future__ import annotations

import os
from pathlib import Path


def tmp_path(path: str | Path) -> Path:
    """The temporary name a file is written under before it is renamed into place."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Readers see the old file or the complete new one, never a partial write."""
    tmp = tmp_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)
