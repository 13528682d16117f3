"""Write the label table `ppg-cvae prep --labels` needs for a folder of recordings described by an INDEX.json
(a list of {file, fs_hz, age, sex, subject_id, source: {repo}, site}), such as the real-PPG collection in
docs/REAL_DATA.md:

    python -m data_prep.real_ppg_labels /path/to/real-ppg/INDEX.json labels.csv
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def labels_from_index(index: list[dict]) -> pd.DataFrame:
    """One row per recording: record, age, sex, fs, subject_id, source (the repository), site."""
    return pd.DataFrame([{"record": Path(r["file"]).stem, "age": r["age"], "sex": r["sex"], "fs": r["fs_hz"],
                          "subject_id": r["subject_id"], "source": r["source"]["repo"], "site": r.get("site") or ""}
                         for r in index])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    table = labels_from_index(json.loads(Path(argv[0]).read_text()))
    Path(argv[1]).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(argv[1], index=False)
    print(f"wrote {argv[1]}: {len(table)} recordings from {table['source'].nunique()} sources")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
