"""MIMIC-III matched waveform records: WFDB records (multi-segment, gaps read as missing) named
`pNNNNNN-YYYY-MM-DD-hh-mm`, labelled per subject by a table whose record column holds the subject id."""
from __future__ import annotations

import re
from pathlib import Path

RECORD = re.compile(r"^p(\d{6})-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}$")


def mimic_subject(record: str) -> str | None:
    """'p000020-2183-04-28-17-47' -> '20' (the MIMIC-III subject id); None for other names."""
    m = RECORD.match(record)
    return str(int(m.group(1))) if m else None


def segment_records(headers: list[Path]) -> set[str]:
    """Names of the records that multi-segment headers among `headers` list as their segments (and layouts): in a
    directory of MIMIC-III records only the master headers are recordings."""
    names = set()
    for hea in headers:
        lines = [line for line in hea.read_text(errors="replace").splitlines() if line and not line.startswith("#")]
        if lines and "/" in lines[0].split()[0]:
            names |= {line.split()[0] for line in lines[1:] if line.split()[0] != "~"}
    return names
