"""dilated_correlate against the memory floor and the peers found installed.

3x2048x2048 float32, 'same', reflect boundary (zero padding for torch), 3x3
Laplacian at dilations 1..64; then 5x5 and 7x7 kernels; then 1-D signals of 10^7
samples. Every figure is a median of several runs in this process; ratios compare
methods measured in the same run.

    python benchmarks/bench_engine.py [--quick]
"""

from __future__ import annotations

import sys

import numpy as np
from _common import machine, median_ms, optional, print_table

from dilcli.core import engine
from dilcli.core.conv import dilated_correlate
from dilcli.core.kernels import LAPLACIAN

QUICK = "--quick" in sys.argv
SIZE = 1024 if QUICK else 2048
DILATIONS = (1, 2, 4, 8, 16, 32, 64)


def zero_stuffed(kernel, d):
    stuffed = np.zeros(((np.array(kernel.shape) - 1) * d + 1), dtype=np.float32)
    stuffed[::d, ::d] = kernel
    return stuffed


def main():
    print(
        f"machine: {machine()}; compiled engine: {'yes' if engine._cengine else 'no (numpy engine)'}"
    )
    rng = np.random.default_rng(0)
    image = rng.random((SIZE, SIZE, 3), dtype=np.float32)  # dilcli: channels last
    planes = np.ascontiguousarray(np.moveaxis(image, -1, 0))  # peers: channels first
    kernel = LAPLACIAN.astype(np.float32)
    floor = median_ms(lambda: image.copy())
    # dilcli first, peers after: importing torch starts thread pools that spin for a
    # while and would slow whatever runs next (seen here: 86 ms instead of 10).
    ours = {d: median_ms(lambda: dilated_correlate(image, kernel, d), warmup=3) for d in DILATIONS}
    larger = {}
    for k in (5, 7):
        weights = rng.normal(size=(k, k)).astype(np.float32)
        for d in (1, 4, 16):
            larger[k, d] = median_ms(lambda: dilated_correlate(image, weights, d), repeat=3)
    signal = rng.random(10**6 if QUICK else 10**7).astype(np.float32)
    signal_floor = median_ms(lambda: signal.copy())
    taps = np.array([0.25, 0.5, 0.25], np.float32)
    signals = {
        (d, mode): median_ms(lambda: dilated_correlate(signal, taps, d, mode=mode))
        for d in (1, 16, 256)
        for mode in ("same", "causal")
    }

    torch, cv2 = optional("torch"), optional("cv2")
    from scipy import ndimage

    rows = []
    for d in DILATIONS:
        row = [d, f"{floor:.1f}", f"{ours[d]:.1f}", f"{ours[d] / floor:.2f}"]
        scipy_ms = median_ms(
            lambda: [ndimage.correlate(p, zero_stuffed(kernel, d), mode="reflect") for p in planes],
            repeat=3,
        )
        row += [f"{scipy_ms:.0f}", f"{scipy_ms / ours[d]:.1f}x"]
        if torch is not None:
            torch.set_num_threads(2)
            x = torch.from_numpy(planes)[None]
            w = torch.from_numpy(np.repeat(kernel[None, None], 3, axis=0))
            with torch.no_grad():
                conv = lambda: torch.nn.functional.conv2d(
                    x, w, padding="same", dilation=d, groups=3
                )
                torch_ms = median_ms(conv, repeat=3)
            row += [f"{torch_ms:.0f}", f"{torch_ms / ours[d]:.1f}x"]
        if cv2 is not None:
            stuffed = zero_stuffed(kernel, d)
            cv_ms = median_ms(
                lambda: cv2.filter2D(image, -1, stuffed, borderType=cv2.BORDER_REFLECT), repeat=3
            )
            row += [f"{cv_ms:.1f}", f"{cv_ms / ours[d]:.1f}x"]
        rows.append(row)
    header = ["d", "copy ms", "dilcli ms", "dilcli/copy", "scipy ms", "scipy/dilcli"]
    header += ["torch ms", "torch/dilcli"] if torch is not None else []
    header += ["OpenCV ms", "OpenCV/dilcli"] if cv2 is not None else []
    print_table(
        f"3x{SIZE}x{SIZE} float32, 3x3 Laplacian (target: dilcli/copy <= 3, scipy/dilcli >= 10, torch/dilcli >= 8, OpenCV/dilcli >= 1 at d >= 8)",
        header,
        rows,
    )

    rows = [[f"{k}x{k}", d, f"{ms:.1f}", f"{ms / floor:.2f}"] for (k, d), ms in larger.items()]
    print_table("larger kernels (same image)", ["kernel", "d", "dilcli ms", "dilcli/copy"], rows)

    rows = [
        [d, mode, f"{signal_floor:.1f}", f"{ms:.1f}", f"{ms / signal_floor:.2f}"]
        for (d, mode), ms in signals.items()
    ]
    print_table(
        f"1-D signal of {signal.size:,} float32 samples, 3 taps (target: <= 3x the copy)",
        ["d", "mode", "copy ms", "dilcli ms", "dilcli/copy"],
        rows,
    )


if __name__ == "__main__":
    main()
