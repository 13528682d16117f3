"""Package layers point one way (launch -> cvae -> data_prep; the shared pieces import no project module), generation
and model loading import no Horovod, and the README's layout lists every module there is."""
import ast
import re
import subprocess
import sys

import pytest

from conftest import REPO

LAYERS = {"launch": 2, "cvae": 1, "data_prep": 0}
SHARED = {"data_prep/config.py", "data_prep/errors.py", "data_prep/files.py"}


def project_imports(path):
    """Top-level project packages a module imports (at module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in LAYERS}
    return found


def modules():
    return sorted(p for pkg in LAYERS for p in (REPO / pkg).rglob("*.py"))


def test_no_module_imports_a_higher_layer():
    upward = [f"{p.relative_to(REPO)} imports {dep}" for p in modules()
              for dep in project_imports(p) if LAYERS[dep] > LAYERS[p.relative_to(REPO).parts[0]]]
    assert upward == []


def test_the_shared_pieces_import_no_project_module():
    for rel in SHARED:
        assert project_imports(REPO / rel) - {"data_prep"} == set(), rel
        inside = [n for n in ast.walk(ast.parse((REPO / rel).read_text())) if isinstance(n, ast.ImportFrom)
                  and n.module and n.module.split(".")[0] in LAYERS]
        assert [n.module for n in inside if f"{n.module.replace('.', '/')}.py" not in SHARED] == [], rel


def test_the_layer_check_catches_an_upward_import(tmp_path, monkeypatch):
    bad = tmp_path / "data_prep" / "x.py"
    bad.parent.mkdir()
    bad.write_text("def f():\n    from cvae.model import CVAE\n")
    assert project_imports(bad) == {"cvae"}


@pytest.mark.parametrize("module", ["cvae.generate", "cvae.sampler", "cvae.evaluate.report"])
def test_generation_and_model_loading_import_no_horovod(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'horovod'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_readme_layout_names_every_module():
    text = (REPO / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    missing = []
    for p in modules():
        if p.name != "__init__.py" and not re.search(rf"\b{re.escape(p.stem)}\b", layout):
            missing.append(str(p.relative_to(REPO)))
    assert missing == []
