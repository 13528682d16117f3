"""Generation and model loading import no Horovod (each checked in a fresh interpreter)."""
import subprocess
import sys

import pytest

from conftest import REPO

LAYERS = {"launch": 2, "cvae": 1, "data_prep": 0}
SHARED = "data_prep/common.py"
ROOMS = {"model": 0, "generation": 1, "training": 2, "evaluate": 3}


@pytest.mark.parametrize("module", ["cvae.generation.generate", "cvae.generation.sampler", "cvae.evaluate.report"])
def test_generation_and_model_loading_import_no_horovod(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'horovod'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
