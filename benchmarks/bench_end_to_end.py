"""A whole `dilcli convolve` run against scripts doing the same job with peers.

One 4000x3000 JPEG to four 8-bit PNGs (|Laplacian| at d = 1, 2, 4, 8). Each method
runs in its own process; wall time and peak memory (max RSS) are measured from
outside, in the same run. Peers: Pillow + scipy.ndimage (always), OpenCV (when
installed).

    python benchmarks/bench_end_to_end.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _common import machine, optional, print_table
from PIL import Image

QUICK = "--quick" in sys.argv
WIDTH, HEIGHT = (2000, 1500) if QUICK else (4000, 3000)
DILATIONS = "1,2,4,8"

SCIPY_SCRIPT = """
import sys, numpy as np
from PIL import Image
from scipy import ndimage
src, out = sys.argv[1], sys.argv[2]
x = np.asarray(Image.open(src), dtype=np.float32) / 255
k = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)
for d in (1, 2, 4, 8):
    s = np.zeros((2 * d + 1,) * 2, np.float32); s[::d, ::d] = k
    y = np.stack([ndimage.correlate(x[..., c], s, mode="reflect") for c in range(3)], -1)
    Image.fromarray((np.clip(np.abs(y), 0, 1) * 255 + 0.5).astype(np.uint8)).save(f"{out}/scipy_d{d}.png", compress_level=1)
"""

OPENCV_SCRIPT = """
import sys, numpy as np, cv2
src, out = sys.argv[1], sys.argv[2]
x = cv2.imread(src).astype(np.float32) / 255
k = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)
for d in (1, 2, 4, 8):
    s = np.zeros((2 * d + 1,) * 2, np.float32); s[::d, ::d] = k
    y = cv2.filter2D(x, -1, s, borderType=cv2.BORDER_REFLECT)
    cv2.imwrite(f"{out}/cv_d{d}.png", (np.clip(np.abs(y), 0, 1) * 255 + 0.5).astype(np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
"""


def measure(command):
    """Wall seconds and peak RSS (MB) of a child process."""
    start = time.perf_counter()
    wrapper = textwrap.dedent(
        """
        import resource, subprocess, sys
        code = subprocess.run(sys.argv[1:]).returncode
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        sys.exit(code)
        """
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed: {done.stderr[-500:]}")
    return seconds, int(done.stdout.split()[-1]) / 1024


def main():
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        rng = np.random.default_rng(0)
        base = Image.open(
            Path(__file__).parent.parent / "sample_images" / "hubble_deep_field.jpg"
        ).convert("RGB")
        big = np.asarray(base.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.float32)
        big += rng.normal(0, 4, big.shape)
        source = folder / "big.jpg"
        Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(source, quality=90)
        float_mb = WIDTH * HEIGHT * 3 * 4 / 2**20
        rows = []
        dilcli = [
            sys.executable,
            "-m",
            "dilcli",
            "convolve",
            str(source),
            "-k",
            "laplacian",
            "-d",
            DILATIONS,
            "-o",
            str(folder / "dilcli"),
            "-q",
            "--overwrite",
        ]
        timings = {"dilcli": measure(dilcli)}
        (folder / "peers").mkdir()
        timings["Pillow + scipy"] = measure(
            [sys.executable, "-c", SCIPY_SCRIPT, str(source), str(folder / "peers")]
        )
        if optional("cv2") is not None:
            timings["OpenCV"] = measure(
                [sys.executable, "-c", OPENCV_SCRIPT, str(source), str(folder / "peers")]
            )
        ours = timings["dilcli"][0]
        for name, (seconds, peak) in timings.items():
            rows.append(
                [
                    name,
                    f"{seconds:.2f}",
                    f"{seconds / ours:.2f}",
                    f"{peak:.0f}",
                    f"{peak / float_mb:.2f}",
                ]
            )
        print_table(
            f"one {WIDTH}x{HEIGHT} JPEG -> four 8-bit PNGs, d = {DILATIONS} (targets: dilcli no slower than OpenCV; peak < 4x the float32 image, {float_mb:.0f} MB)",
            ["method", "seconds", "time / dilcli", "peak MB", "peak / float image"],
            rows,
        )


if __name__ == "__main__":
    main()
