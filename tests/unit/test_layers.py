"""Package layers point one way (launch -> cvae -> data_prep; the shared pieces import no project module), cvae's
rooms too (evaluate -> training -> generation -> model; settings modules import only the shared module), generation
and model loading import no Horovod, and the README's layout lists every module there is, in its package."""
import ast
import re

from conftest import REPO

LAYERS = {"launch": 2, "cvae": 1, "data_prep": 0}
SHARED = "data_prep/common.py"
ROOMS = {"model": 0, "generation": 1, "training": 2, "evaluate": 3}


def imported_modules(path) -> set[str]:
    """Dotted project modules (or packages) a module imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {f"{node.module}.{a.name}" if (REPO / node.module.replace(".", "/") / a.name).is_dir()
                      or (REPO / node.module.replace(".", "/") / f"{a.name}.py").is_file() else node.module
                      for a in node.names}
    return {m for m in found if m.split(".")[0] in LAYERS}


def project_imports(path):
    """Top-level project packages a module imports."""
    return {m.split(".")[0] for m in imported_modules(path)}


def modules():
    return sorted(p for pkg in LAYERS for p in (REPO / pkg).rglob("*.py"))


def test_no_module_imports_a_higher_layer():
    upward = [f"{p.relative_to(REPO)} imports {dep}" for p in modules()
              for dep in project_imports(p) if LAYERS[dep] > LAYERS[p.relative_to(REPO).parts[0]]]
    assert upward == []


def test_the_shared_pieces_import_no_project_module():
    assert imported_modules(REPO / SHARED) == set()
    settings = [REPO / "data_prep" / "settings.py", *sorted((REPO / "cvae").glob("*/settings.py"))]
    assert len(settings) == 4
    for path in settings:
        assert imported_modules(path) == {"data_prep.common"}, path


def room(module: str) -> int | None:
    """The rank of the cvae room a dotted module belongs to (None: not in a room)."""
    parts = module.split(".")
    return ROOMS.get(parts[1]) if parts[0] == "cvae" and len(parts) > 1 else None


def test_cvae_rooms_import_downward_only():
    upward = []
    for path in sorted((REPO / "cvae").rglob("*.py")):
        here = room(".".join(path.relative_to(REPO).with_suffix("").parts))
        for dep in imported_modules(path):
            there = room(dep)
            if there is not None and (here is None and dep.split(".")[-1] != "settings" or
                                      here is not None and there > here):
                upward.append(f"{path.relative_to(REPO)} imports {dep}")
    assert upward == []


def test_the_layer_checks_catch_an_upward_import(tmp_path):
    bad = tmp_path / "data_prep" / "x.py"
    bad.parent.mkdir()
    bad.write_text("def f():\n    from cvae.model.network import CVAE\n")
    assert project_imports(bad) == {"cvae"}
    assert room("cvae.training.trainer") > room("cvae.generation.sampler") > room("cvae.model.network")
    assert room("cvae.keras2") is None


def layout_entries() -> dict[str, str]:
    """The README's layout block as {package path: the text of its entry} (an entry starts at column 0)."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("## Layout"):].split("```")[1]
    entries, current = {}, None
    for line in block.splitlines():
        if line and not line[0].isspace():
            current, _, rest = line.partition(" ")
            entries[current] = rest
        elif current:
            entries[current] += " " + line.strip()
    return entries


def test_readme_layout_lists_every_module_in_its_package():
    entries = layout_entries()
    packages = sorted({p.parent for pkg in LAYERS for p in (REPO / pkg).rglob("*.py")} - {REPO / "tests"})
    listed = {}
    for package in packages:
        key = f"{package.relative_to(REPO)}/"
        assert key in entries, f"the README's layout has no entry {key}"
        listed[key] = set(re.findall(r"\b(\w+)\.py\b", entries[key]))
        actual = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
        assert listed[key] == actual, key
