"""Fused stacks in bounded memory: the context module (C = 21) and the 5-level starlet.

Issue 13 asks for both on a 20000 x 20000 input in bounded memory, with the time per
megapixel beside the in-memory path. Each case runs `dilcli context` in its own process,
streamed (`--max-memory`, default 512M) at its streamed size and in memory (a
`--max-memory` large enough for the whole image) at ``--memory-size``, where the whole
image fits; wall time and the peak resident memory of the process tree are measured
from outside (bench_large.measure). The starlet's input is an 8-bit gray tiled BigTIFF
(make_big_tiff.py), its outputs 8-bit PNGs (five planes and the residual). The context
module's input is a ``(size, size, 21)`` ``.npy`` of ``--context-dtype`` (uint8 by
default: 20000^2 x 21 is 8.4 GB, against 33.6 GB in float32), random values read as
they are (0..255 for uint8); its output the final layer (``--final-only``) as an 8-bit
PNG of the channel mean, or with ``--context-format npy`` as float32 .npy (all 21
channels: as large as a float32 input).

    python benchmarks/bench_streaming.py [--size 20000] [--context-size N]
        [--memory-size 4000] [--max-memory 512M] [--workdir DIR]
        [--cases context,starlet] [--context-dtype uint8] [--context-format png] [--keep]

The streamed context module at 20000^2 is slow: its halo (33 rows on each side) is
recomputed by every band, and at that width the band that fits is one row tall. Give
--context-size to run it smaller; the table says what ran. Generated inputs and outputs
are deleted at the end unless --keep.
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


def write_feature_maps(path, size, dtype, *, band=512, seed=0):
    """A (size, size, 21) .npy written band by band (never whole in memory)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype,
                                      shape=(size, size, CHANNELS))  # fmt: skip
    for top in range(0, size, band):
        shape = (min(band, size - top), size, CHANNELS)
        if dtype.kind == "u":
            array[top : top + shape[0]] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            array[top : top + shape[0]] = rng.random(shape, dtype=np.float32)
    array.flush()
    del array


def inputs(workdir, case, size, dtype):
    if case == "context":
        path = workdir / f"feats{size}-{dtype}.npy"
        if not path.exists():
            write_feature_maps(path, size, dtype)
    else:
        path = workdir / f"gray{size}.tif"
        if not path.exists():
            write_big_tiff(path, size, quiet=True)
    return path


def command(case, source, folder, max_memory, context_format):
    base = [sys.executable, "-m", "dilcli", "context", str(source), "-o", str(folder)]
    base += ["--max-pixels", "0", "--max-memory", max_memory, "-v", "--overwrite", "-j", "1"]
    if case == "context":
        return base + ["--preset", "context-basic", "--format", context_format, "--final-only"]
    return base + ["--preset", "starlet", "--levels", "5"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="streamed side (20000)")
    parser.add_argument("--context-size", type=int, help="streamed side of the context case")
    parser.add_argument("--memory-size", type=int, default=4000, help="in-memory side (4000)")
    parser.add_argument("--max-memory", default="512M", help="streamed --max-memory (512M)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--cases", default="context,starlet")
    parser.add_argument("--context-dtype", default="uint8", choices=["uint8", "float16", "float32"])
    parser.add_argument("--context-format", default="png", choices=["png", "npy"])
    parser.add_argument("--keep", action="store_true", help="keep inputs and outputs")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dilcli-bench-streaming-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    rows, made = [], []
    for case in args.cases.split(","):
        streamed_size = args.context_size if case == "context" and args.context_size else args.size
        for label, size, budget in (
            ("streamed", streamed_size, args.max_memory),
            ("in memory", args.memory_size, "64G"),
        ):
            source = inputs(workdir, case, size, args.context_dtype)
            folder = workdir / f"{case}-{label.replace(' ', '-')}-{size}"
            made += [source, folder]
            shutil.rmtree(folder, ignore_errors=True)
            print(f"running {case} {label} at {size} ...", file=sys.stderr)
            log = workdir / f"{folder.name}.log"
            code, seconds, peak = measure(
                command(case, source, folder, budget, args.context_format), log=log
            )
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
        f"context-basic (C = {CHANNELS}, {args.context_dtype} .npy in, final layer as "
        f"{args.context_format}) and the 5-level starlet (8-bit PNGs); streamed with "
        f"--max-memory {args.max_memory}",
        ["case", "path", "size", "bands", "seconds", "ms per MP", "peak MB", "outputs MB"],
        rows,
    )
    if not args.keep:
        for path in dict.fromkeys(made):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
