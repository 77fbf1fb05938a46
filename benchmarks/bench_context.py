"""The basic context module (C = 21, 512 x 512): dilcli against peers in the same run.

The peer is the plain way to write a conv layer with the correlation core: a Python loop
over every (output, input) channel pair, each pair one dilated 2-D correlation. Both are
run on the identity-initialised module (the paper's starting point, whose taps are mostly
zero) and on dense weights (a trained module). PyTorch's conv2d is timed too when
torch is installed. Prints one line per case with the time ratio.

    python benchmarks/bench_context.py [--size 512] [--channels 21] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dilcli.core.conv import dilated_correlate
from dilcli.core.stacks import Layer, context_basic, forward


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
        print(
            f"  {name}: dilcli {ours:.3f} s, per-channel-pair loop {loop:.3f} s, "
            f"ratio {loop / ours:.1f}x (max difference {error:.1e})"
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
