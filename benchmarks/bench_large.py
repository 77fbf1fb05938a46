"""Issue 13's benchmark: a gigapixel image through `dilcli convolve`, beside libvips.

A 40000 x 40000 8-bit gray tiled BigTIFF (1.6 GP, made by make_big_tiff.py) through
|Laplacian| at d = 1, 2, 4, 8 to four 8-bit outputs, as PNG and as tiled TIFF. The
peer is libvips (pyvips, benchmark-only), streaming the same file (access
"sequential") through `conv` with the zero-stuffed 8-neighbour mask of each dilation
(integer arithmetic on 16-bit samples), `abs` and a cast to 8 bits, saved as PNG
(zlib level 1, no row filter, as dilcli's) or as deflate tiled BigTIFF (256 x 256
tiles, horizontal predictor, as dilcli's). Both run in their own process, one after
the other, in this run; wall time and peak memory are measured from outside (the
resident memory of the whole process tree, polled from /proc, and the kernel's peak
of each process from wait4).

libvips' `conv` extends the image by copying its edge pixels (scipy's 'nearest'), so
dilcli runs with `--boundary nearest`, and with `--map abs` (|y| clipped, as libvips'
`abs` and `cast`; the default `tone` map spreads the values, and its PNGs deflate
slower); at sizes up to 8000 the outputs are compared
pixel by pixel (they should be identical: integer responses, rounded alike).

Targets (issue 13): dilcli under 1 GB peak, no slower than libvips, within 2x its
memory.

    python benchmarks/bench_large.py [--size 40000] [--workdir DIR] [--formats png,tiff]
        [--methods dilcli,libvips,parts] [--input big.tif] [--keep]

Until `dilcli convolve` streams images (issue 13), sizes over its in-memory limit are
reported as too large for dilcli, and the libvips side still runs. A third row,
"parts", does the job with dilcli's pieces and no command line: bands read by
io/regions (256 rows and the halo), core/conv, the CLI's abs mapping, io/regions'
writers; it measures the cost of reading and writing in parts at this size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _common import machine, print_table
from make_big_tiff import write_big_tiff

DILATIONS = (1, 2, 4, 8)
IN_MEMORY_LIMIT = 250_000_000  # dilcli's default --max-pixels (the whole-image path)

VIPS_SCRIPT = textwrap.dedent(
    """
    import sys
    import pyvips
    source, folder, fmt = sys.argv[1:4]
    for d in map(int, sys.argv[4:]):
        side = 2 * d + 1
        mask = [[0] * side for _ in range(side)]
        for i in (0, d, 2 * d):
            for j in (0, d, 2 * d):
                mask[i][j] = -1
        mask[d][d] = 8
        image = pyvips.Image.new_from_file(source, access="sequential")
        response = image.cast("short").conv(
            pyvips.Image.new_from_list(mask, scale=1, offset=0), precision="integer"
        )
        pixels = response.abs().cast("uchar")
        name = f"{folder}/vips_d{d}"
        if fmt == "png":
            pixels.pngsave(name + ".png", compression=1, filter="none")
        else:
            pixels.tiffsave(
                name + ".tif", tile=True, tile_width=256, tile_height=256,
                compression="deflate", predictor="horizontal", bigtiff=True,
            )
    """
)

# The same job through dilcli's parts without its command line: bands read by
# io/regions, correlated by core/conv, mapped as the CLI maps (abs, 8 bits) and written
# by io/regions. It shows what reading and writing in parts cost at this size while the
# command line's own streaming path (issue 13) is not there yet.
PARTS_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from dilcli.core.conv import dilated_correlate
    from dilcli.core.kernels import named_kernel
    from dilcli.io.regions import open_reader, open_writer
    from dilcli.render.display import display_values, quantize
    source, folder, fmt = sys.argv[1:4]
    kernel = named_kernel("laplacian").parts[0]
    band = 256
    for d in map(int, sys.argv[4:]):
        reader = open_reader(source, max_pixels=0)
        height, width = reader.shape
        name = f"{folder}/parts_d{d}." + ("png" if fmt == "png" else "tif")
        with reader, open_writer(name, shape=(height, width), dtype="uint8", fmt=fmt) as out:
            for top in range(0, height, band):
                bottom = min(height, top + band)
                rows = reader.read(max(0, top - d), min(height, bottom + d))
                # the halo beyond the image: its edge rows (the 'nearest' rule)
                above, below = d - (top - max(0, top - d)), d - (min(height, bottom + d) - bottom)
                rows = np.pad(rows, ((above, below), (0, 0)), mode="edge")
                response = dilated_correlate(rows, kernel, d, boundary="nearest")[d:-d]
                out.write_rows(top, quantize(display_values(response, "abs"), 8, inplace=True))
    """
)


def tree_memory_kb(root, peaks):
    """Resident memory (kB) of ``root`` and every process under it, from /proc; each
    process's own peak since it started (VmHWM) is kept in ``peaks``."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
                    elif line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    stack.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(command, *, log):
    """Run ``command``: (exit code, wall seconds, peak MB of the process tree).

    The peak is the larger of the tree's summed resident memory (polled every 50 ms)
    and any one process's own high-water mark (VmHWM, which starts afresh at exec;
    getrusage's ru_maxrss would carry this script's own size into its children).
    """
    start = time.perf_counter()
    peaks = {}
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_memory_kb(process.pid, peaks))
            time.sleep(0.05)
    seconds = time.perf_counter() - start
    peak = max(peak, *peaks.values()) if peaks else peak
    return process.returncode, seconds, peak / 1024


def dilcli_streams():
    """Whether `dilcli convolve` reads large images in parts (its --max-memory option)."""
    text = subprocess.run(
        [sys.executable, "-m", "dilcli", "convolve", "--help"], capture_output=True, text=True
    ).stdout
    return "--max-memory" in text


def dilcli_command(source, folder, fmt):
    command = [sys.executable, "-m", "dilcli", "convolve", str(source), "-k", "laplacian"]
    command += ["-d", ",".join(map(str, DILATIONS)), "-o", str(folder), "--boundary", "nearest"]
    command += ["--map", "abs", "--max-pixels", "0", "-q", "--overwrite"]
    if fmt == "tiff":  # 8-bit tiled TIFF: pixels as for PNG, in a TIFF
        command += ["--format", "tiff", "--bits", "8"]
    return command


def output_kind(path):
    """The sample type of an output file, from its header."""
    import tifffile

    if path.suffix == ".png":
        with open(path, "rb") as handle:
            return "uint8" if handle.read(25)[24] == 8 else "uint16"
    with tifffile.TiffFile(path) as tif:
        return str(tif.pages.first.dtype)


def read_pixels(path):
    """An 8-bit output as a uint8 array (small sizes only)."""
    import tifffile
    from PIL import Image

    if path.suffix == ".png":
        with Image.open(path) as image:
            return np.asarray(image)
    return tifffile.imread(path)


def compare(ours, theirs):
    """Pixels that differ between two 8-bit outputs, and the largest difference."""
    a, b = read_pixels(ours), read_pixels(theirs)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shapes differ: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return f"{np.count_nonzero(difference):,} pixels differ, by at most {difference.max()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=40000, help="image side (40000)")
    parser.add_argument("--workdir", type=Path, help="folder for the input and outputs")
    parser.add_argument("--input", type=Path, help="an existing 8-bit TIFF (else generated)")
    parser.add_argument("--formats", default="png,tiff", help="png,tiff")
    parser.add_argument("--methods", default="dilcli,libvips,parts", help="dilcli,libvips,parts")
    parser.add_argument("--keep", action="store_true", help="keep the outputs")
    args = parser.parse_args(argv)
    formats = args.formats.split(",")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dilcli-bench-large-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = args.input or workdir / f"big{args.size}.tif"
    if not source.exists():
        print(f"writing the input {source} ...", file=sys.stderr)
        write_big_tiff(source, args.size)
    import tifffile

    with tifffile.TiffFile(source) as tif:
        height, width = tif.pages.first.shape[:2]
    pixels = height * width
    print(f"machine: {machine()}")
    print(f"input: {source}, {width} x {height} = {pixels / 1e9:.2f} GP, ", end="")
    print(f"{source.stat().st_size / 2**20:,.0f} MB")
    print(f"disk free in {workdir}: {shutil.disk_usage(workdir).free / 2**30:.0f} GB")
    streams = dilcli_streams()
    rows, notes = [], []
    for fmt in formats:
        results = {}
        for method in args.methods.split(","):
            folder = workdir / f"{method}-{fmt}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            if method == "dilcli":
                if not streams and pixels > IN_MEMORY_LIMIT:
                    notes.append(
                        f"dilcli {fmt}: {pixels:,} pixels is over the in-memory path's "
                        f"{IN_MEMORY_LIMIT:,} and this dilcli does not stream yet: not run"
                    )
                    continue
                command = dilcli_command(source, folder, fmt)
            else:
                script = VIPS_SCRIPT if method == "libvips" else PARTS_SCRIPT
                command = [sys.executable, "-c", script, str(source), str(folder), fmt]
                command += [str(d) for d in DILATIONS]
            log = workdir / f"{method}-{fmt}.log"
            print(f"running {method} -> {fmt} ...", file=sys.stderr)
            code, seconds, peak = measure(command, log=log)
            if code != 0:
                tail = log.read_text()[-400:].strip().replace("\n", " | ")
                notes.append(f"{method} {fmt}: exit {code}: {tail}")
                continue
            outputs = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".tif", ".tiff"))
            kinds = {output_kind(p) for p in outputs}
            if kinds != {"uint8"}:
                notes.append(f"{method} {fmt}: wrote {', '.join(sorted(kinds))}, not 8-bit")
            size = sum(p.stat().st_size for p in outputs) / 2**20
            results[method] = (seconds, peak, outputs)
            rows.append(
                [method, fmt, f"{seconds:.1f}", f"{pixels * len(DILATIONS) / seconds / 1e6:.1f}"]
                + [f"{peak:.0f}", f"{size:,.0f}"]
            )
        for method in ("dilcli", "parts"):
            if method not in results or "libvips" not in results:
                continue
            (ours, our_peak, our_files), (theirs, their_peak, their_files) = (
                results[method],
                results["libvips"],
            )
            ratio = [f"{method} / libvips", fmt, f"{ours / theirs:.2f}", ""]
            rows.append(ratio + [f"{our_peak / their_peak:.2f}", ""])
            if pixels <= 8000**2:
                for mine, peer in zip(our_files, their_files):
                    notes.append(f"{fmt} {mine.name} vs {peer.name}: {compare(mine, peer)}")
        if not args.keep:
            for method in ("dilcli", "libvips", "parts"):
                shutil.rmtree(workdir / f"{method}-{fmt}", ignore_errors=True)
    print_table(
        f"{width} x {height} 8-bit tiled BigTIFF -> |Laplacian| at d = "
        f"{','.join(map(str, DILATIONS))}, four 8-bit outputs (targets: dilcli peak < 1 GB, "
        "time <= libvips, memory <= 2x libvips)",
        ["method", "output", "seconds", "MP/s (all d)", "peak MB", "outputs MB"],
        rows,
    )
    for note in notes:
        print(f"- {note}")
    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
