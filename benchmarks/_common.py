"""Shared helpers of the benchmark scripts: timing, peers found installed, tables."""

from __future__ import annotations

import importlib
import platform
import statistics
import time


def median_ms(function, repeat=7, warmup=1):
    """Median wall time of ``function()`` in milliseconds."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def optional(module):
    """The module if installed, else None (peers are never required)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def machine():
    import os

    import numpy as np

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def print_table(title, header, rows):
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
