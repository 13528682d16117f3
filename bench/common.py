"""Shared bench helpers: timing, peak RSS, and the results line format."""
from __future__ import annotations

import json
import resource
import time
from contextlib import contextmanager


@contextmanager
def timer(result: dict, key: str):
    t0 = time.perf_counter()
    yield
    result[key] = time.perf_counter() - t0


def peak_rss_mib() -> dict:
    """Peak resident set size of this process and of its largest finished child, MiB."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def report(name: str, rows: dict) -> None:
    """Print a bench's numbers as one JSON line (the PERFORMANCE.md table is copied from these)."""
    print(f"BENCH {name} " + json.dumps(rows, default=lambda x: round(x, 4) if isinstance(x, float) else str(x)))
