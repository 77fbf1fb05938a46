"""Batch throughput: images per second with 1 and 2 workers, and the machinery's cost.

40 RGB images of 1920x1080 (PNG), |Laplacian| at d = 1, 2 (two outputs each).
The per-file overhead is the batch run's time per image minus a plain loop that
calls the same core functions (load, correlate, save) in one process.

    python benchmarks/bench_batch.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, print_table
from PIL import Image

QUICK = "--quick" in sys.argv
COUNT = 12 if QUICK else 40
SIZE = (1080, 1920)


def run_cli(source, out, jobs):
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dilcli",
            "convolve",
            str(source),
            "-d",
            "1,2",
            "-o",
            str(out),
            "-j",
            str(jobs),
            "-q",
        ],
        check=True,
    )
    return time.perf_counter() - start


def run_loop(source, out):
    from dilcli.core import parallel
    from dilcli.core.conv import apply_kernel
    from dilcli.core.kernels import named_kernel
    from dilcli.io import images, png
    from dilcli.render import display

    parallel.set_threads(1)
    kernel = named_kernel("laplacian")
    out.mkdir()
    start = time.perf_counter()
    for path in sorted(source.iterdir()):
        image = images.load_image(path)
        for d in (1, 2):
            pixels = display.quantize(
                display.display_values(apply_kernel(image.data, kernel, d), "abs"), 8
            )
            png.save_pixels(out / f"{path.stem}_d{d}.png", pixels)
    return time.perf_counter() - start


def main():
    print(f"machine: {machine()}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = folder / "in"
        source.mkdir()
        base = (rng.random((SIZE[0] // 8, SIZE[1] // 8, 3)) * 255).astype(np.uint8)
        for i in range(COUNT):
            image = Image.fromarray(np.roll(base, i, axis=1)).resize(
                SIZE[::-1], Image.Resampling.BILINEAR
            )
            image.save(source / f"frame{i:03d}.png", compress_level=1)
        one = run_cli(source, folder / "j1", 1)
        two = run_cli(source, folder / "j2", 2)
        loop = run_loop(source, folder / "loop")
        rows = [
            ["-j 1", f"{one:.2f}", f"{COUNT / one:.2f}", ""],
            ["-j 2", f"{two:.2f}", f"{COUNT / two:.2f}", f"{one / two:.2f}x"],
            ["plain loop over the core, 1 process", f"{loop:.2f}", f"{COUNT / loop:.2f}", ""],
        ]
        print_table(
            f"{COUNT} images of {SIZE[1]}x{SIZE[0]} (target: -j 2 / -j 1 >= 1.8x on 2 cores)",
            ["run", "seconds", "images/s", "speed-up"],
            rows,
        )
        print(
            f"\nper-file overhead of the batch machinery (-j 1 minus the plain loop): {1000 * (one - loop) / COUNT:.0f} ms per image"
        )


if __name__ == "__main__":
    main()
