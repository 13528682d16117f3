"""The untrusted-pickle loader: known gadgets are refused unexecuted, allocation is bounded, and plain data
written by numpy 1.x/2.x with pandas 1.5, 2.2 and 3.x loads with the same values."""
import io
import pickle
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from conftest import pickle_call as call
from data_prep.readers.safe_pickle import RestrictedUnpickler, load_reference_pickle

sys.path.insert(0, str(REPO / "tests" / "data"))
from make_pickle_fixtures import PROTOCOLS, build, expected  # noqa: E402

FIXTURES = sorted((REPO / "tests" / "data" / "pickles").glob("*.pickle"))


def g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def a(*args) -> bytes:
    """Opcodes that push the tuple `args`."""
    return pickle.dumps(tuple(args), protocol=2)[2:-1]


def gadgets(tmp_path):
    """(description, pickle bytes, file that must not appear): each a known way to run code or touch files."""
    m = tmp_path / "executed"
    sh = f"touch {m}"
    evil = tmp_path / "inner.pickle"
    evil.write_bytes(call("os", "system", sh))
    (tmp_path / "numpy_gadget.py").write_text(f"open({str(m)!r}, 'w').close()\n")
    csv = tmp_path / "secret.csv"
    csv.write_text("a\n1\n")
    os_module = g("builtins", "__import__") + a("os") + b"R"
    getattr_chain = (b"\x80\x02" + g("builtins", "getattr") + b"(" + os_module + pickle.dumps("system", 2)[2:-1]
                     + b"tR" + a(sh) + b"R.")
    attrgetter = (b"\x80\x02" + g("operator", "attrgetter") + a("system") + b"R("
                  + g("importlib", "import_module") + a("os") + b"RtR" + a(sh) + b"R.")
    return [
        ("os.system", call("os", "system", sh), m),
        ("posix.system", call("posix", "system", sh), m),
        ("subprocess.Popen", call("subprocess", "Popen", ["touch", str(m)]), m),
        ("subprocess.check_output", call("subprocess", "check_output", ["touch", str(m)]), m),
        ("builtins.eval", call("builtins", "eval", f"__import__('os').system({sh!r})"), m),
        ("builtins.exec", call("builtins", "exec", f"__import__('os').system({sh!r})"), m),
        ("__builtin__.eval (protocol 0 name)", call("__builtin__", "eval", f"__import__('os').system({sh!r})"), m),
        ("builtins.getattr chain", getattr_chain, m),
        ("builtins.__import__", call("builtins", "__import__", "numpy_gadget"), m),
        ("builtins.open", call("builtins", "open", str(m), "w"), m),
        ("numpy.memmap", call("numpy", "memmap", str(m), "uint8", "w+", 0, (16,)), m),
        ("numpy.load(allow_pickle=True)", call("numpy", "load", str(evil), None, True), m),
        ("numpy.save", call("numpy", "save", str(m), [1, 2]), m),
        ("numpy.f2py.compile", call("numpy.f2py", "compile", "x", "gadget"), m),
        ("numpy.testing runstring", call("numpy.testing._private.utils", "runstring", f"open({str(m)!r},'w')", {}), m),
        ("module named like numpy", call("numpy_gadget", "anything"), m),
        ("pandas.read_pickle", call("pandas", "read_pickle", str(evil)), m),
        ("pandas.read_csv", call("pandas", "read_csv", str(csv)), m),
        ("pandas.io.parsers.read_csv", call("pandas.io.parsers", "read_csv", str(csv)), m),
        ("pandas.eval", call("pandas", "eval", f"__import__('os').system({sh!r})"), m),
        ("pandas Expr", call("pandas.core.computation.expr", "Expr", f"__import__('os').system({sh!r})"), m),
        ("pandas DataFrame.to_csv", call("pandas.core.generic", "NDFrame.to_csv", str(m)), m),
        ("importlib.import_module", call("importlib", "import_module", "numpy_gadget"), m),
        ("operator.attrgetter chain", attrgetter, m),
        ("operator.methodcaller", call("operator", "methodcaller", "system", sh), m),
        ("codecs to another codec", call("_codecs", "encode", "x", "rot13"), m),
        ("shutil.rmtree", call("shutil", "rmtree", str(tmp_path)), m),
        ("pickle.loads nested", call("pickle", "loads", call("os", "system", sh)), m),
    ]


def test_known_gadgets_are_refused_unexecuted_and_touch_no_file(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))   # a module named like numpy, importable if anything asked for it
    for what, blob, marker in gadgets(tmp_path):
        with pytest.raises(pickle.UnpicklingError, match="refused") as err:
            RestrictedUnpickler(io.BytesIO(blob)).load()
        assert not marker.exists(), what
        assert "numpy_gadget" not in sys.modules, what
        assert "\n" not in str(err.value), what
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner.pickle", "numpy_gadget.py", "secret.csv"]


def test_the_refused_name_is_in_the_one_line_error(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(call("pandas.core.computation.expr", "Expr", "1"))
    with pytest.raises(ValueError, match=r"^refused to load 'pandas.core.computation.expr.Expr'"):
        load_reference_pickle(path, tmp_path / "work")
    assert [p.name for p in (tmp_path / "work").iterdir()] == []   # the loader's exchange file is gone too


@pytest.mark.parametrize("blob", [call("builtins", "bytearray", 10 ** 11),
                                  call("numpy", "ndarray", (10 ** 11,))], ids=["bytearray", "ndarray"])
def test_allocation_is_bounded(tmp_path, blob):
    path = tmp_path / "big.pickle"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="MiB a pickle of this size may use"):
        load_reference_pickle(path, tmp_path)


def plain(samples, labels) -> dict:
    """Loaded values in the fixture's plain form, for comparison with expected()."""
    def num(col):
        return [None if pd.isna(v) else float(v) for v in labels[col]]
    return {"age": num("age"), "sex": list(labels["sex"]), "subject_id": list(labels["subject_id"]),
            "weight": num("weight"), "height": num("height"),
            "smoker": [None if pd.isna(v) else bool(v) for v in labels["smoker"]], "hr": [int(v) for v in labels["hr"]],
            "site": list(labels["site"]),
            "recorded": [pd.Timestamp(v).isoformat() for v in labels["recorded"]],
            "samples": [np.round(s, 6).tolist() for s in samples]}


def check_fixture(path, tmp_path):
    samples, labels = load_reference_pickle(path, tmp_path / "work")
    want = expected()
    got = plain(samples, labels)
    for key in want:
        a, b = got[key], want[key]
        if key == "samples":
            assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(a, b)) and len(a) == len(b), (path.name, key)
        else:
            assert a == pytest.approx(b) if key in ("age", "weight", "height") else a == b, (path.name, key, a, b)
    assert list(labels["recorded_utc"].astype(str)) == [str(pd.Timestamp(t)) for t in want["recorded"]]


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_pickles_written_by_other_numpy_and_pandas_versions_load_with_the_same_values(path, tmp_path):
    check_fixture(path, tmp_path)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickles_written_by_the_installed_numpy_and_pandas_load_with_the_same_values(protocol, tmp_path):
    path = tmp_path / f"installed-p{protocol}.pickle"
    path.write_bytes(pickle.dumps(build(), protocol=protocol))
    check_fixture(path, tmp_path)
