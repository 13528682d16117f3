"""Shared bench helper: the results line format."""
from __future__ import annotations

import json


def report(name: str, rows: dict) -> None:
    """Print a bench's numbers as one JSON line (the PERFORMANCE.md table is copied from these)."""
    print(f"BENCH {name} " + json.dumps(rows, default=lambda x: round(x, 4) if isinstance(x, float) else str(x)))
