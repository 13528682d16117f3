"""Generation and model loading import no Horovod (each checked in a fresh interpreter)."""
import subprocess
import sys

import pytest

from conftest import REPO

@pytest.mark.parametrize("module", ["cvae.generation.generate", "cvae.generation.sampler", "cvae.evaluate.report"])
def test_generation_and_model_loading_import_no_horovod(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'horovod'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
