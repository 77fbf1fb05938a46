"""Write a large 8-bit gray tiled BigTIFF with image-like content, in little memory.

The input of issue 13's benchmark (benchmarks/bench_large.py): 40000 x 40000 pixels
(1.6 GP), deflate-compressed 256 x 256 tiles. The content is not constant, so the
compression and the convolutions do real work: mirrored copies of the camera sample
(edges, texture and flat sky at every scale of a photograph), each copy with its own
gain and offset, under a slow illumination field and a little noise. Rows are made a
band at a time and written through dilcli's own band writer (io/regions.py), so the
generator holds one band and one row of tiles, whatever the size.

    python benchmarks/make_big_tiff.py big.tif [--size 40000] [--band 256]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dilcli.io.regions import open_writer

SAMPLE = Path(__file__).parent.parent / "sample_images" / "camera.png"


def mirrored(indices, period):
    """0, 1, ..., period - 1, period - 1, ..., 0, 0, 1, ...: copies without seams."""
    phase = indices % (2 * period)
    return np.where(phase < period, phase, 2 * period - 1 - phase)


def band_pixels(base, top, rows, width, seed=0):
    """Rows ``top : top + rows`` of the image, uint8 ``(rows, width)``."""
    side = base.shape[0]
    y = np.arange(top, top + rows)
    x = np.arange(width)
    values = np.take(base[mirrored(y, side)], mirrored(x, side), axis=1).astype(np.float32)
    # each copy of the sample: its own gain and offset (a hash of its position)
    copy_x = x // side
    for copy_y in np.unique(y // side):
        code = (int(copy_y) * 7919 + copy_x * 104729 + seed) % 1009
        gain = np.float32(0.55) + (code % 37).astype(np.float32) * np.float32(0.0125)
        offset = (code % 41).astype(np.float32) - np.float32(20)
        part = values[y // side == copy_y]
        part *= gain
        part += offset
        values[y // side == copy_y] = part
    # slow illumination: a field that varies over thousands of pixels
    light = np.float32(25) * np.cos(x / np.float32(4397.0)).astype(np.float32)
    values += np.sin(y / np.float32(3183.0)).astype(np.float32)[:, None] * light
    rng = np.random.default_rng([seed, top])
    values += rng.integers(-3, 4, values.shape, dtype=np.int8)
    values += np.float32(0.5)
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def write_big_tiff(path, size, *, band=256, tile=256, quiet=False):
    """Write a ``size`` x ``size`` 8-bit tiled BigTIFF at ``path``; return seconds."""
    base = np.asarray(Image.open(SAMPLE).convert("L"))
    start = time.perf_counter()
    with open_writer(path, shape=(size, size), dtype="uint8", fmt="tiff", tile=tile) as writer:
        for top in range(0, size, band):
            rows = min(band, size - top)
            writer.write_rows(top, band_pixels(base, top, rows, size))
            if not quiet and (top // band) % 10 == 0:
                done = (top + rows) / size
                print(f"\r{done:6.1%} of {size} rows", end="", file=sys.stderr, flush=True)
    if not quiet:
        print(file=sys.stderr)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--size", type=int, default=40000, help="side in pixels (40000)")
    parser.add_argument("--band", type=int, default=256, help="rows made at a time (256)")
    args = parser.parse_args(argv)
    seconds = write_big_tiff(args.output, args.size, band=args.band)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    megabytes = args.output.stat().st_size / 2**20
    print(
        f"{args.output}: {args.size} x {args.size} 8-bit tiled BigTIFF, {megabytes:,.0f} MB, "
        f"written in {seconds:.1f} s, peak memory {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
