"""The basic context module (C = 21, 512 x 512): dilcli against peers in the same run.

Peers: the plain way to write a conv layer with the correlation core (a Python loop over
every (output, input) channel pair, each pair one dilated 2-D correlation); dilcli's
previous channel mixing (one product per kernel row over the whole padded image, each
tap's part added shifted: :func:`per_kernel_row`); PyTorch's conv2d when torch is
installed. All run on the identity-initialised module (the paper's starting point, whose
taps are mostly zero) and on dense weights (a trained module). Prints one line per case
with the time ratio, and dilcli's rate in GFLOP/s (2 flops per multiply-add of the
non-zero taps).

    python benchmarks/bench_context.py [--size 512] [--channels 21] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dilcli.core import stacks
from dilcli.core.conv import axis_geometry, dilated_correlate, extend
from dilcli.core.stacks import MATMUL_PIXELS, Layer, context_basic, forward


def per_channel_pair(x, layers, boundary):
    """Every layer as C_out x C_in separate dilated correlations, summed."""
    for layer in layers:
        c_out, c_in = layer.weights.shape[:2]
        planes = [np.ascontiguousarray(x[..., i]) for i in range(c_in)]
        y = np.zeros(x.shape[:2] + (c_out,), dtype=x.dtype)
        for o in range(c_out):
            for i in range(c_in):
                y[..., o] += dilated_correlate(
                    planes[i], layer.weights[o, i], layer.dilation, boundary=boundary
                )
        if layer.bias is not None:
            y += layer.bias.astype(y.dtype)
        x = np.maximum(y, 0) if layer.relu else y
    return x


def per_kernel_row(x, weights, dilation, mode, boundary, cval, flip, finish=None):
    """dilcli's channel mixing before im2col (kept here as a peer): the input extended
    whole, then per kernel row one product of its rows with the row's taps side by
    side, ``(C_in, taps * C_out)``, each tap's part added shifted by its offset."""
    if x.ndim == 2:
        x = x[..., np.newaxis]
    c_out, c_in, kh, kw = weights.shape
    if flip:
        weights = weights[:, :, ::-1, ::-1]
    taps = weights.transpose(2, 3, 1, 0).astype(x.dtype)
    row_mode, column_mode = (mode, mode) if isinstance(mode, str) else mode
    row_dilation, dilation = (dilation, dilation) if np.ndim(dilation) == 0 else dilation
    top, bottom, height = axis_geometry(x.shape[0], kh, row_dilation, row_mode)
    left, right, width = axis_geometry(x.shape[1], kw, dilation, column_mode)
    padded = np.ascontiguousarray(extend(x, [(top, bottom), (left, right)], boundary, cval))
    padded_width = padded.shape[1]
    kernel_rows = []
    for a in range(kh):
        columns = [b for b in range(kw) if np.any(taps[a, b])]
        if columns:
            kernel_rows.append((a, columns, np.concatenate([taps[a, b] for b in columns], axis=1)))
    out = np.zeros((height, width, c_out), dtype=x.dtype)
    if not kernel_rows:
        if finish is not None:
            finish(out.reshape(-1, c_out))
        return out
    widest = max(matrix.shape[1] for _, _, matrix in kernel_rows)
    strip = max(1, (1 << 21) // (padded_width * max(c_in, widest) * x.dtype.itemsize))
    scratch = np.empty(min(strip, height) * padded_width * widest, dtype=x.dtype)
    pad_in = np.empty((MATMUL_PIXELS, c_in), dtype=x.dtype)
    pad_out = np.empty((MATMUL_PIXELS, widest), dtype=x.dtype)
    for start in range(0, height, strip):
        stop = min(start + strip, height)
        for a, columns, matrix in kernel_rows:
            rows = padded[start + a * row_dilation : stop + a * row_dilation].reshape(-1, c_in)
            product = scratch[: rows.shape[0] * matrix.shape[1]].reshape(rows.shape[0], -1)
            count = rows.shape[0]
            full = count - count % MATMUL_PIXELS
            for first in range(0, full, MATMUL_PIXELS):
                last = first + MATMUL_PIXELS
                np.matmul(rows[first:last], matrix, out=product[first:last])
            if full < count:
                pad_in[: count - full] = rows[full:]
                pad_in[count - full :] = 0
                tail = pad_out[:, : matrix.shape[1]]
                np.matmul(pad_in, matrix, out=tail)
                product[full:] = tail[: count - full]
            product = product.reshape(stop - start, padded_width, len(columns), c_out)
            for n, b in enumerate(columns):
                out[start:stop] += product[:, b * dilation : b * dilation + width, n]
    if finish is not None:
        finish(out.reshape(-1, c_out))
    return out


def previous_path(x, layers):
    """The module through :func:`per_kernel_row` in place of today's channel mixing."""
    current = stacks._mix_channels
    stacks._mix_channels = per_kernel_row
    try:
        return forward(x, layers, boundary="constant")[-1]
    finally:
        stacks._mix_channels = current


def gigaflops(layers, pixels, seconds):
    """2 flops per multiply-add of every non-zero tap, per pixel, per second."""
    multiply_adds = sum(
        int(np.count_nonzero(np.any(layer.weights, axis=(0, 1))))
        * layer.weights.shape[0]
        * layer.weights.shape[1]
        for layer in layers
    )
    return 2 * multiply_adds * pixels / seconds / 1e9


def with_torch(x, layers):
    import torch

    y = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        for layer in layers:
            w = torch.from_numpy(layer.weights.astype(np.float32))
            pad = layer.dilation * (w.shape[-1] // 2)
            y = torch.nn.functional.conv2d(y, w, padding=pad, dilation=layer.dilation)
            if layer.relu:
                y = torch.relu(y)
    return y[0].numpy().transpose(1, 2, 0)


def best_time(function, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--channels", type=int, default=21)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.size, args.size, args.channels)).astype(np.float32)
    identity = context_basic(args.channels)
    dense = [
        Layer(rng.normal(0, 0.1, layer.weights.shape), layer.dilation, relu=layer.relu)
        for layer in identity
    ]
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    print(
        f"basic context module, C = {args.channels}, {args.size}x{args.size}, float32, "
        f"best of {args.repeat}"
    )
    for name, layers in (("identity init", identity), ("dense weights", dense)):
        ours, got = best_time(
            lambda layers=layers: forward(x, layers, boundary="constant")[-1], args.repeat
        )
        loop, want = best_time(lambda layers=layers: per_channel_pair(x, layers, "constant"), 1)
        error = float(np.abs(got - want).max())
        rate = gigaflops(layers, x.shape[0] * x.shape[1], ours)
        print(
            f"  {name}: dilcli {ours:.3f} s ({rate:.1f} GFLOP/s), per-channel-pair loop "
            f"{loop:.3f} s, ratio {loop / ours:.1f}x (max difference {error:.1e})"
        )
        before, want = best_time(lambda layers=layers: previous_path(x, layers), args.repeat)
        error = float(np.abs(got - want).max())
        print(
            f"  {name}: previous dilcli (a product per kernel row) {before:.3f} s, "
            f"ratio {before / ours:.1f}x (max difference {error:.1e})"
        )
        if have_torch:
            peer, want = best_time(lambda layers=layers: with_torch(x, layers), args.repeat)
            error = float(np.abs(got - want).max())
            print(
                f"  {name}: torch conv2d {peer:.3f} s, dilcli / torch {ours / peer:.2f} "
                f"(max difference {error:.1e})"
            )
    if not have_torch:
        print("  torch not installed: no torch comparison")


if __name__ == "__main__":
    main()
