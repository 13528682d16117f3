"""The untrusted-pickle loader's fixtures: plain data written by numpy 1.x/2.x with pandas 1.5, 2.2 and 3.x (each
is loaded in tests/e2e/test_safe_pickle.py, where the loader's child process runs)."""
from conftest import REPO

FIXTURES = sorted((REPO / "tests" / "data" / "pickles").glob("*.pickle"))


def test_fixture_set_covers_numpy_2_and_pandas_3():
    names = " ".join(p.name for p in FIXTURES)
    assert "np2." in names and "pd2.2" in names and "pd3." in names and "-arrow-" in names and "pd1.5" in names
