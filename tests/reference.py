"""Independent references: direct loops over the definitions in docs/design.md (sections 2-4).

Slow on purpose and written without any of dilcli's code, so the fast paths are
checked against the formula itself.
"""

from __future__ import annotations

import itertools

import numpy as np


def boundary_index(i, n, boundary):
    """scipy.ndimage's extension rules, one position at a time; None means cval."""
    if 0 <= i < n:
        return i
    if boundary == "constant":
        return None
    if boundary == "nearest":
        return min(max(i, 0), n - 1)
    if boundary == "wrap":
        return i % n
    if boundary == "reflect":  # d c b a | a b c d | d c b a, walked step by step
        while not 0 <= i < n:
            i = -i - 1 if i < 0 else 2 * n - 1 - i
        return i
    if boundary == "mirror":  # d c b | a b c d | c b a
        if n == 1:
            return 0
        while not 0 <= i < n:
            i = -i if i < 0 else 2 * (n - 1) - i
        return i
    raise ValueError(boundary)


def offset_and_size(n, k, d, mode):
    span = (k - 1) * d + 1
    return {
        "same": ((span - 1) // 2, n),
        "valid": (0, n - span + 1),
        "full": (span - 1, n + span - 1),
        "causal": (span - 1, n),
    }[mode]


def direct_correlate(x, kernel, dilation, mode="same", boundary="reflect", cval=0.0):
    """y[i] = sum_t w[t] x[i + t*d - o] per spatial axis, by loops, in float64."""
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    spatial = kernel.ndim
    dilations = (dilation,) * spatial if np.isscalar(dilation) else tuple(dilation)
    geometry = [offset_and_size(n, k, d, mode) for n, k, d in zip(x.shape, kernel.shape, dilations)]
    channels = x.shape[spatial:]
    out = np.zeros(tuple(size for _, size in geometry) + channels)
    for out_index in itertools.product(*(range(size) for _, size in geometry)):
        total = np.zeros(channels)
        for taps in itertools.product(*(range(k) for k in kernel.shape)):
            source = []
            for axis, (i, t) in enumerate(zip(out_index, taps)):
                offset = geometry[axis][0]
                source.append(
                    boundary_index(i + t * dilations[axis] - offset, x.shape[axis], boundary)
                )
            value = cval if None in source else x[tuple(source)]
            total = total + kernel[taps] * value
        out[out_index] = total
    return out
