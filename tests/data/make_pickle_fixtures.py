"""Write the legitimate reference-format pickles in tests/data/pickles/ with whatever numpy/pandas run this script.

    python tests/data/make_pickle_fixtures.py tests/data/pickles

The committed fixtures were written by (see tests/data/pickles/VERSIONS.txt):
  numpy 1.26.4 + pandas 1.5.3, numpy 2.1.3 + pandas 2.2.3, numpy 2.3.5 + pandas 3.0.0 (with and without pyarrow),
each with pickle protocols 2, 4 and 5. `expected()` is what every one of them must load as.
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd

PROTOCOLS = (2, 4, 5)


def expected() -> dict:
    """Plain Python values (no numpy/pandas types) of the fixture, column by column."""
    return {
        "age": [21.5, 44.0, 67.25, 80.0],
        "sex": ["M", "F", "F", "M"],
        "subject_id": ["s1", "s2", "s3", "s4"],
        "weight": [70.0, None, 55.0, 81.0],
        "height": [1.80, 1.65, None, 1.72],
        "smoker": [True, False, None, True],
        "hr": [60, 72, 88, 55],
        "site": ["finger", "wrist", "finger", "finger"],
        "recorded": ["2020-01-02T03:04:05", "2021-06-07T08:09:10", "2022-11-12T13:14:15", "2023-03-04T05:06:07"],
        "samples": [np.sin(np.linspace(0, 6 * k, 64)).round(6).tolist() for k in range(1, 5)],
    }


def build() -> dict:
    """The fixture object: {"labels": DataFrame with categorical/string/nullable/datetime columns, "samples": [...]}."""
    e = expected()
    labels = pd.DataFrame({
        "age": np.array(e["age"], np.float64),
        "sex": pd.Categorical(e["sex"]),
        "subject_id": pd.array(e["subject_id"], dtype="string"),
        "weight": pd.array([70, None, 55, 81], dtype="Int64"),
        "height": pd.array(e["height"], dtype="Float64"),
        "smoker": pd.array(e["smoker"], dtype="boolean"),
        "hr": np.array(e["hr"], np.int64),
        "site": np.array(e["site"], dtype=object),
        "recorded": pd.to_datetime(e["recorded"]),
        "recorded_utc": pd.to_datetime(e["recorded"]).tz_localize("UTC"),
    })
    samples = [np.array(s, np.float64 if k % 2 else np.float32) for k, s in enumerate(e["samples"])]
    return {"labels": labels, "samples": samples}


def main(out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import pyarrow  # noqa: F401  (pandas 3 stores its default string dtype in Arrow when pyarrow is installed)
        arrow = "-arrow"
    except ImportError:
        arrow = ""
    obj = build()
    for protocol in PROTOCOLS:
        name = f"ref-np{np.__version__}-pd{pd.__version__}{arrow}-p{protocol}.pickle"
        (out_dir / name).write_bytes(pickle.dumps(obj, protocol=protocol))
        print(out_dir / name)


if __name__ == "__main__":
    main(sys.argv[1])
