"""What ``dilcli kernels`` says each kernel does is what the engine computes.

Every description is read as a claim and checked by pushing impulses, ramps, constants
and random signals through :func:`dilcli.dilated_correlate` ('same' mode, and
'causal' for 1-D where a description names it) at odd and even dilations:

- 1-D ``y[i] = EXPR`` (and ``causal: EXPR``): the expression is evaluated as written.
- 2-D: ``y[i,j] = EXPR``; ``K*x[i,j] minus its N neighbours d apart``; ``right minus
  left`` / ``below minus above`` with ``rows``/``columns weighted a b c``; ``K*d on
  x[i,j] = j`` (a ramp); ``[..]/n on each axis, taps d apart``; ``hypot(a, b)``;
  ``0 on flat areas and ramps``; ``keeps flat areas``.

A description with no claim the test can check fails, so new kernels get checked too.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from numpy.testing import assert_allclose

from dilcli import dilated_correlate
from dilcli.core.conv import apply_kernel
from dilcli.core.kernels import definitions, named_kernel

DILATIONS = (1, 2, 3, 4, 5)
SIZE = 64  # interior points i with every tap inside: no boundary in play
MARGIN = 2 * max(DILATIONS) + 2
INTERIOR = slice(MARGIN, SIZE - MARGIN)


def _description(name, ndim):
    return {n: d for n, d, _ in definitions(ndim)}[name]


def _cut(text):
    """A formula up to ', ', ' (', ': ', or the end."""
    return re.split(r", | \(|: |\)$", text, maxsplit=1)[0].strip()


# --- 1-D: formulas evaluated as written ---------------------------------------------------


def _signals(rng):
    impulse = np.zeros(SIZE)
    impulse[SIZE // 2] = 1.0
    return [impulse, np.arange(SIZE, dtype=float), rng.standard_normal(SIZE)]


@pytest.mark.parametrize("name", [n for n, _, _ in definitions(1)])
def test_1d_description_formulas_are_what_the_engine_computes(name, rng):
    description = _description(name, 1)
    formulas = {"same": re.search(r"y\[i\] = (.*)", description)}
    formulas["causal"] = re.search(r"causal: (.*)", description)
    assert formulas["same"], f"{name}: the description has no y[i] = formula: {description!r}"
    weights = named_kernel(name, ndim=1).parts[0]
    for mode, match in formulas.items():
        if match is None:
            continue
        expression = _cut(match.group(1))
        for d in DILATIONS:
            for x in _signals(rng):
                y = dilated_correlate(x, weights, d, mode=mode, boundary="nearest")
                want = [eval(expression, {"x": x, "i": i, "d": d}) for i in range(SIZE)[INTERIOR]]
                assert_allclose(y[INTERIOR], want, atol=1e-12, err_msg=f"{name} {mode} d={d}")


def test_the_difference_kernel_in_same_mode_is_centred_as_described():
    # The case: not x[i+d] - x[i] but x[i+d-d//2] - x[i-d//2].
    x = np.arange(SIZE, dtype=float) ** 2
    for d in (1, 2, 3, 4):
        y = dilated_correlate(x, named_kernel("difference", ndim=1).parts[0], d)
        i = SIZE // 2
        assert y[i] == x[i + d - d // 2] - x[i - d // 2]
        assert (y[i] == x[i + d] - x[i]) == (d == 1)


# --- 2-D: claims checked one by one ---------------------------------------------------------


def _impulse_response(weights, d):
    """The response to a unit impulse at the centre, as {(di, dj): value} of non-zeros:
    correlation reads ``x[i + di, j + dj]`` with weight ``value`` at offset ``(-di, -dj)``."""
    x = np.zeros((SIZE, SIZE))
    x[SIZE // 2, SIZE // 2] = 1.0
    y = dilated_correlate(x, weights, d)
    return {(SIZE // 2 - i, SIZE // 2 - j): y[i, j] for i, j in zip(*np.nonzero(np.abs(y) > 1e-12))}


def _ramp(axis):
    i, j = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    return i if axis == "i" else j


def _check_neighbours(weights, d, centre, count):
    # K*x[i,j] minus its N neighbours d apart (8: the 3x3 ring; 4: up, down, left, right)
    offsets = [(a * d, b * d) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
    if count == 4:
        offsets = [(a, b) for a, b in offsets if a == 0 or b == 0]
    want = {(0, 0): centre, **{offset: -1.0 for offset in offsets}}
    assert _impulse_response(weights, d) == pytest.approx(want)


def _check_difference(weights, d, direction, axis_weights):
    # "right minus left, rows weighted a b c": +w at column +d, -w at column -d.
    response, want = _impulse_response(weights, d), {}
    for k, w in zip((-1, 0, 1), axis_weights):
        if direction == "right minus left":
            want[(k * d, d)], want[(k * d, -d)] = w, -w
        else:
            want[(d, k * d)], want[(-d, k * d)] = w, -w
    assert response == pytest.approx(want)


def _check_separable(weights, d, taps, divisor):
    one_d = np.array(taps, float) / divisor
    centre = len(taps) // 2
    want = {
        ((a - centre) * d, (b - centre) * d): one_d[a] * one_d[b]
        for a in range(len(taps))
        for b in range(len(taps))
    }
    assert _impulse_response(weights, d) == pytest.approx(want)


CLAIMS_2D = [
    (r"y\[i,j\] = (?P<expr>[^:]+)", "formula"),
    (r"(?P<centre>\d+)\*x\[i,j\] minus its (?P<count>[48]) neighbours d apart", "neighbours"),
    (
        r"(?P<direction>right minus left|below minus above), (?:rows|columns) weighted "
        r"(?P<weights>\d+ \d+ \d+)",
        "difference",
    ),
    (r"(?P<slope>\d+)\*d on x\[i,j\] = (?P<axis>[ij])", "ramp"),
    (r"\[(?P<taps>[\d ]+)\]/(?P<divisor>\d+) on each axis, taps d apart", "separable"),
    (r"hypot\((?P<x>[\w-]+), (?P<y>[\w-]+)\)", "hypot"),
    (r"0 on flat areas and ramps", "flat and ramps"),
    (r"keeps flat areas", "keeps flat"),
]


@pytest.mark.parametrize("name", [n for n, _, _ in definitions(2)])
def test_2d_description_claims_hold(name, rng):
    description = _description(name, 2)
    kernel = named_kernel(name)
    checked = []
    for pattern, claim in CLAIMS_2D:
        match = re.search(pattern, description)
        if match is None:
            continue
        checked.append(claim)
        for d in DILATIONS:
            x = rng.standard_normal((SIZE, SIZE))
            y = apply_kernel(x, kernel, d)
            if claim == "formula":
                rows = range(SIZE)[INTERIOR]
                want = [[eval(match["expr"], {"x": x, "i": i, "j": j, "d": d}) for j in rows]
                        for i in rows]  # fmt: skip
                assert_allclose(y[INTERIOR, INTERIOR], want, atol=1e-12)
            elif claim == "neighbours":
                _check_neighbours(kernel.parts[0], d, float(match["centre"]), int(match["count"]))
            elif claim == "difference":
                taps = [float(w) for w in match["weights"].split()]
                _check_difference(kernel.parts[0], d, match["direction"], taps)
            elif claim == "ramp":
                other = "j" if match["axis"] == "i" else "i"
                along = apply_kernel(_ramp(match["axis"]), kernel, d)[INTERIOR, INTERIOR]
                across = apply_kernel(_ramp(other), kernel, d)[INTERIOR, INTERIOR]
                assert_allclose(along, float(match["slope"]) * d, atol=1e-9)
                assert_allclose(across, 0, atol=1e-9)
            elif claim == "separable":
                taps = [float(t) for t in match["taps"].split()]
                _check_separable(kernel.parts[0], d, taps, float(match["divisor"]))
            elif claim == "hypot":
                parts = [apply_kernel(x, named_kernel(match[k]), d) for k in ("x", "y")]
                assert_allclose(y, np.hypot(*parts), rtol=1e-6, atol=1e-9)
            elif claim == "flat and ramps":
                for z in (np.full((SIZE, SIZE), 0.7), _ramp("i") - 2 * _ramp("j")):
                    assert_allclose(apply_kernel(z, kernel, d)[INTERIOR, INTERIOR], 0, atol=1e-9)
            elif claim == "keeps flat":
                flat = np.full((SIZE, SIZE), 0.7)
                assert_allclose(apply_kernel(flat, kernel, d), 0.7, rtol=1e-12)
    assert checked, f"{name}: nothing in {description!r} is checked"


def test_derivative_directions_are_as_named():
    # "along x (columns)": increasing to the right is positive; "along y (rows)": downward.
    image = _ramp("j")
    assert apply_kernel(image, named_kernel("sobel-x"), 1)[10, 10] > 0
    assert apply_kernel(_ramp("i"), named_kernel("sobel-y"), 1)[10, 10] > 0
