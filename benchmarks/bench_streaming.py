"""Fused stacks in bounded memory: the context module (C = 21) and the 5-level starlet.

Issue 13 asks for both on a 20000 x 20000 input in bounded memory, with the time per
megapixel beside the in-memory path. Each case runs `dilcli context` in its own process,
streamed (`--max-memory`, default 512M) at ``--size`` and in memory (a `--max-memory`
large enough for the whole image) at ``--memory-size``, where the whole image fits;
wall time and the peak resident memory of the process tree are measured from outside
(bench_large.measure). The context module's input is a ``(size, size, 21)`` float32
``.npy`` (memory-mapped when read), the starlet's an 8-bit gray tiled BigTIFF
(make_big_tiff.py). Outputs are float32 ``.npy`` for the context module (its final
layer, ``--final-only``: 21 channels) and 8-bit PNGs for the starlet (five planes and
the residual).

    python benchmarks/bench_streaming.py [--size 20000] [--memory-size 4000]
        [--max-memory 512M] [--workdir DIR] [--cases context,starlet]

A 20000 x 20000 x 21 float32 input is 33.6 GB on disk and its output as much again:
give --size to fit the disk and the time at hand; the table says what ran.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import machine, print_table
from bench_large import measure
from make_big_tiff import write_big_tiff

CHANNELS = 21


def write_feature_maps(path, size, *, band=512, seed=0):
    """A (size, size, 21) float32 .npy written band by band (never whole in memory)."""
    rng = np.random.default_rng(seed)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                      shape=(size, size, CHANNELS))  # fmt: skip
    for top in range(0, size, band):
        rows = min(band, size - top)
        array[top : top + rows] = rng.random((rows, size, CHANNELS), dtype=np.float32)
    array.flush()
    del array


def inputs(workdir, case, size):
    if case == "context":
        path = workdir / f"feats{size}.npy"
        if not path.exists():
            write_feature_maps(path, size)
    else:
        path = workdir / f"gray{size}.tif"
        if not path.exists():
            write_big_tiff(path, size, quiet=True)
    return path


def command(case, source, folder, max_memory):
    base = [sys.executable, "-m", "dilcli", "context", str(source), "-o", str(folder)]
    base += ["--max-pixels", "0", "--max-memory", max_memory, "-v", "--overwrite", "-j", "1"]
    if case == "context":
        return base + ["--preset", "context-basic", "--format", "npy", "--final-only"]
    return base + ["--preset", "starlet", "--levels", "5"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="streamed side (20000)")
    parser.add_argument("--memory-size", type=int, default=4000, help="in-memory side (4000)")
    parser.add_argument("--max-memory", default="512M", help="streamed --max-memory (512M)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--cases", default="context,starlet")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dilcli-bench-streaming-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    rows = []
    for case in args.cases.split(","):
        for label, size, budget in (
            ("streamed", args.size, args.max_memory),
            ("in memory", args.memory_size, "64G"),
        ):
            source = inputs(workdir, case, size)
            folder = workdir / f"{case}-{label.replace(' ', '-')}-{size}"
            shutil.rmtree(folder, ignore_errors=True)
            print(f"running {case} {label} at {size} ...", file=sys.stderr)
            log = workdir / f"{folder.name}.log"
            code, seconds, peak = measure(command(case, source, folder, budget), log=log)
            if code != 0:
                rows.append([case, label, f"{size}x{size}", f"exit {code}", "", "", "", ""])
                continue
            # -v prints the plan of an input computed in bands.
            bands = re.search(r"streamed in (\d+) bands of (\d+) rows", log.read_text())
            how = f"{bands[1]} x {bands[2]} rows" if bands else "whole"
            megapixels = size * size / 1e6
            written = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
            rows.append(
                [case, label, f"{size}x{size}", how, f"{seconds:.1f}",
                 f"{seconds / megapixels * 1000:.1f}", f"{peak:.0f}", f"{written:,.0f}"]
            )  # fmt: skip
    print_table(
        f"context-basic (C = {CHANNELS}, final layer, float32 .npy) and the 5-level starlet "
        f"(8-bit PNGs); streamed with --max-memory {args.max_memory}",
        ["case", "path", "size", "bands", "seconds", "ms per MP", "peak MB", "outputs MB"],
        rows,
    )


if __name__ == "__main__":
    main()
