"""The fast path of dilated correlation: cheaper kernels, cache-sized strips, threads.

:func:`correlate` fills ``out`` (rows, columns, channels) with
``y[i, j] = sum_ab w[a, b] * x_ext[i + a*d0 - o0, j + b*d1 - o1]``, where ``x_ext`` is
``x`` extended by the boundary rule. Three ideas keep it near the memory floor:

- **Plans.** A kernel is rewritten once into the cheapest equivalent sum of shifted
  views (:func:`plan`): a rank-1 kernel ``u v^T`` runs as one vertical and one
  horizontal pass (k0 + k1 taps instead of k0 * k1); ``c δ + u v^T`` (the
  8-neighbour Laplacian is ``9 δ - ones``) adds one tap; otherwise every non-zero
  tap. Integer factors stay integer, so weights of ±1 cost one add, not two ops.
- **Strips.** The output is cut into strips of rows small enough for the L2 cache;
  every pass of a strip runs on data already in cache.
- **No padded copy.** Where a strip's windows lie inside the image, it reads views
  of ``x``; only blocks at the border gather the few rows and columns they need by
  the boundary's index map.

Strips run on the shared thread pool of :mod:`dilcli.core.parallel`: numpy releases the
GIL inside its loops.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from dilcli.core.parallel import parallel_map, threads
from dilcli.vocab import BOUNDARY_CODES

# Idle OpenMP threads sleep instead of spinning: spinning threads steal the cores
# that batch workers and other programs need. Read once, when libgomp loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    from dilcli.core import _cengine
except ImportError:  # built without a C compiler: the numpy engine serves
    _cengine = None

# Bytes of one strip buffer: three of them (sources, sums, products) stay in L2.
STRIP_BYTES = 1 << 18
# Output values (columns x channels) per work item of the compiled engine.
CHUNK_VALUES = 2048
use_compiled = True
_local = threading.local()


def boundary_indices(i, n, boundary):
    """Map positions ``i`` (possibly outside ``[0, n)``) to indices inside it.

    scipy.ndimage's definitions, periodic so they hold for any distance outside.
    """
    i = np.asarray(i)
    if boundary == "nearest":
        return np.clip(i, 0, n - 1)
    if boundary == "wrap":
        return np.mod(i, n)
    if boundary == "reflect":  # period 2n: d c b a | a b c d | d c b a
        j = np.mod(i, 2 * n)
        return np.where(j < n, j, 2 * n - 1 - j)
    if boundary == "mirror":  # period 2n - 2: d c b | a b c d | c b a
        if n == 1:
            return np.zeros_like(i)
        j = np.mod(i, 2 * n - 2)
        return np.where(j < n, j, 2 * n - 2 - j)
    raise ValueError(f"unknown boundary {boundary!r}")


# --- plans ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A kernel as the sum to compute: ``taps``, or ``column`` x ``row`` (+ ``centre``)."""

    shape: tuple
    taps: tuple = ()  # ((a, b, w), ...): direct
    column: tuple = ()  # ((a, w), ...): vertical pass of a rank-1 kernel
    row: tuple = ()  # ((b, w), ...): horizontal pass
    scale: float = 1.0  # applied after the two passes
    centre: tuple | None = None  # (a, b, c): one extra tap


def plan(kernel):
    """The cheapest :class:`Plan` for a 2-D ``kernel`` (same dtype as the data)."""
    kernel = np.asarray(kernel)
    taps = tuple((a, b, w) for (a, b), w in np.ndenumerate(kernel) if w != 0)
    direct = Plan(kernel.shape, taps=taps)
    best, best_cost = direct, len(taps)
    factors = _rank_one(kernel)
    if factors is not None:
        separable = _separable_plan(kernel, *factors)
        if _cost(separable) < best_cost:
            best, best_cost = separable, _cost(separable)
    if best is direct and kernel.size <= 49:
        for (a, b), _ in np.ndenumerate(kernel):
            candidate = _centre_plan(kernel, a, b)
            if candidate is not None and _cost(candidate) < best_cost:
                best, best_cost = candidate, _cost(candidate)
    return best


def _cost(p):
    if p.taps or not p.column:
        return len(p.taps)
    return len(p.column) + len(p.row) + (p.centre is not None) + (p.scale != 1)


def _rank_one(kernel):
    if kernel.ndim != 2 or min(kernel.shape) < 2 or not np.any(kernel):
        return None
    u, s, vt = np.linalg.svd(kernel.astype(np.float64))
    if s[1] > 1e-9 * s[0]:
        return None
    root = np.sqrt(s[0])
    return u[:, 0] * root, vt[0] * root


def _integer_scaled(vector):
    """``(integers, scale)`` with ``vector == integers * scale``, or ``(vector, 1)``.

    Only small integers count: weights of very different sizes stay as they are, so
    no plan ever holds a value that float32 cannot (a 1e-30 beside ones, say).
    """
    sizes = np.abs(vector[vector != 0])
    smallest, largest = sizes.min(), sizes.max()
    if largest > 1024 * smallest:
        return vector, 1.0
    scaled = vector / smallest
    if np.allclose(scaled, np.rint(scaled), rtol=0, atol=1e-9 * largest / smallest):
        return np.rint(scaled), smallest
    return vector, 1.0


def _separable_plan(kernel, u, v):
    u, u_scale = _integer_scaled(u)
    v, v_scale = _integer_scaled(v)
    scale = u_scale * v_scale
    if abs(scale - round(scale)) <= 1e-12 * abs(scale):
        scale = float(round(scale))
    if not np.allclose(
        np.outer(u, v) * scale, kernel, rtol=1e-12, atol=1e-12 * np.abs(kernel).max()
    ):
        return Plan(kernel.shape, taps=((0, 0, 0.0),) * kernel.size)  # never chosen
    if scale != 1 and not np.all(v == np.rint(v)):
        v, scale = v * scale, 1.0
    column = tuple((a, w) for a, w in enumerate(u) if w != 0)
    row = tuple((b, w) for b, w in enumerate(v) if w != 0)
    return Plan(kernel.shape, column=column, row=row, scale=float(scale))


def _centre_plan(kernel, a, b):
    """``kernel = c δ_ab + u v^T``? Then a rank-1 plan plus one tap."""
    rows = [r for r in range(kernel.shape[0]) if r != a]
    cols = [c for c in range(kernel.shape[1]) if c != b]
    anchor = next(((r, c) for r in rows for c in cols if kernel[r, c] != 0), None)
    if anchor is None:
        return None
    r, c = anchor
    rest = kernel.astype(np.float64)
    with np.errstate(all="ignore"):  # weights of very different sizes: no plan
        rest[a, b] = kernel[r, b] * kernel[a, c] / kernel[r, c]  # what rank 1 forces there
        centre = kernel[a, b] - rest[a, b]
    scale = np.abs(kernel).max()
    if centre == 0 or not abs(centre) <= 1e6 * scale or not abs(rest[a, b]) <= 1e6 * scale:
        return None
    factors = _rank_one(rest)
    if factors is None:
        return None
    separable = _separable_plan(rest, *factors)
    if separable.taps:
        return None
    return Plan(
        kernel.shape,
        column=separable.column,
        row=separable.row,
        scale=separable.scale,
        centre=(a, b, centre),
    )


# --- execution -----------------------------------------------------------------------


def correlate(x, kernel, dilations, offsets, boundary, cval, out):
    """Fill ``out`` (rows, cols, C) from ``x`` (H, W, C); see the module docstring.

    Uses the compiled engine when it was built (and ``use_compiled`` is on), else
    numpy; both give the definition's result to float rounding.
    """
    if _cengine is not None and use_compiled:
        _correlate_compiled(x, kernel, dilations, offsets, boundary, cval, out)
    else:
        _correlate_numpy(x, plan(kernel), dilations, offsets, boundary, cval, out)


def _correlate_compiled(x, kernel, dilations, offsets, boundary, cval, out):
    if x.shape[1] == 1 and out.shape[1] == 1 and kernel.shape[1] == 1:
        # A signal stored as one column is one long row: chunks of it run in parallel.
        x, out, kernel = x.reshape(1, -1, x.shape[2]), out.reshape(1, -1, out.shape[2]), kernel.T
        dilations, offsets = dilations[::-1], offsets[::-1]
    k1, (d0, d1), (o0, o1) = kernel.shape[1], dilations, offsets
    rows, cols = np.nonzero(kernel)
    if len(rows) == 0:
        out.fill(0)
        return
    # Border columns (whose windows leave the image) get chunks of their own, so
    # interior chunks read the input in place and only the borders are gathered. Every
    # chunk is at most CHUNK_VALUES wide: the engine's scratch for gathered border
    # values is sized by the widest chunk (a short signal under a wide kernel is all
    # border).
    lo, hi = _inside(o1, x.shape[1], (k1 - 1) * d1 + 1, out.shape[1])
    step = max(1, CHUNK_VALUES // x.shape[2])
    pieces = (range(0, lo, step), range(lo, hi, step), range(hi, out.shape[1], step))
    starts = sorted({0, lo, hi, out.shape[1]}.union(*pieces))
    _cengine.correlate(
        x,
        out,
        rows.astype(np.int64),
        cols.astype(np.int64),
        kernel[rows, cols].astype(np.float64),
        np.array(starts, dtype=np.int64),
        x.shape[0],
        x.shape[1],
        x.shape[2],
        out.shape[0],
        out.shape[1],
        d0,
        d1,
        o0,
        o1,
        BOUNDARY_CODES[boundary],
        float(cval),
        threads(),
    )


def _correlate_numpy(x, kernel_plan, dilations, offsets, boundary, cval, out):
    if not kernel_plan.taps and not kernel_plan.column:  # an all-zero kernel
        out.fill(0)
        return
    height, width, channels = x.shape
    out_rows, out_cols = out.shape[:2]
    (k0, k1), (d0, d1), (o0, o1) = kernel_plan.shape, dilations, offsets
    span0, span1 = (k0 - 1) * d0 + 1, (k1 - 1) * d1 + 1
    # Output rows (columns) whose whole window lies inside the input.
    row_lo, row_hi = _inside(o0, height, span0, out_rows)
    col_lo, col_hi = _inside(o1, width, span1, out_cols)
    strip = max(1, STRIP_BYTES // ((out_cols + span1 - 1) * channels * x.itemsize))

    blocks = []
    for start, stop, rows_inside in _segments(out_rows, row_lo, row_hi):
        if not (rows_inside and col_lo < col_hi):
            blocks += [
                (r0, min(r0 + strip, stop), 0, out_cols, False) for r0 in range(start, stop, strip)
            ]
            continue
        for c0, c1, inside in _segments(out_cols, col_lo, col_hi):
            # Border columns are narrow: taller blocks keep their count (and overhead) low.
            rows = (
                strip
                if inside
                else max(strip, STRIP_BYTES // ((c1 - c0 + span1 - 1) * channels * x.itemsize))
            )
            blocks += [
                (r0, min(r0 + rows, stop), c0, c1, inside) for r0 in range(start, stop, rows)
            ]
    context = (x, kernel_plan, (d0, d1), (o0, o1), span1, boundary, cval, out)

    def run(block):
        _block(context, *block)

    workers = min(threads(), len(blocks))
    if workers <= 1 or out.nbytes < 4 * STRIP_BYTES:
        for block in blocks:
            run(block)
    else:
        parallel_map(run, blocks, workers)


def _inside(offset, n, span, out_n):
    """Output positions [lo, hi) whose windows ``[i - o, i - o + span)`` fit in ``[0, n)``."""
    lo = min(offset, out_n)
    hi = max(lo, min(out_n, n - span + offset + 1))
    return lo, hi


def _segments(n, lo, hi):
    """[0, lo) outside, [lo, hi) inside, [hi, n) outside, without empty pieces."""
    pieces = [(0, lo, False), (lo, hi, True), (hi, n, False)]
    return [p for p in pieces if p[0] < p[1]]


def _block(context, r0, r1, c0, c1, inside):
    """Compute ``out[r0:r1, c0:c1]``."""
    x, p, (d0, d1), (o0, o1), span1, boundary, cval, out = context
    target = out[r0:r1, c0:c1]
    src_cols = (c0 - o1, c1 - o1 + span1 - 1)
    last = [None, None]  # the latest source: taps of one kernel row share it

    def source(a):
        """Input rows ``r + a*d0 - o0`` for the block's rows, with their columns.

        Only the latest is kept: a kernel of many rows (a long 1-D kernel is one
        column) must not hold a gathered copy per tap at once.
        """
        if last[0] != a:
            rows = (r0 + a * d0 - o0, r1 + a * d0 - o0)
            if inside:
                last[:] = a, x[rows[0] : rows[1], src_cols[0] : src_cols[1]]
            else:
                last[:] = a, _gather(x, rows, src_cols, boundary, cval)
        return last[1]

    width = c1 - c0
    scratch = _scratch("product", target.shape, out.dtype)
    if p.taps:
        _weighted_sum(
            target,
            [(lambda a=a, b=b: source(a)[:, b * d1 : b * d1 + width], w) for a, b, w in p.taps],
            scratch,
        )
        return
    wide = (r1 - r0, src_cols[1] - src_cols[0], x.shape[2])
    vertical = _scratch("vertical", wide, out.dtype)
    wide_scratch = _scratch("wide", wide, out.dtype)
    _weighted_sum(vertical, [(lambda a=a: source(a), w) for a, w in p.column], wide_scratch)
    _weighted_sum(target, [(vertical[:, b * d1 : b * d1 + width], w) for b, w in p.row], scratch)
    if p.scale != 1:
        target *= target.dtype.type(p.scale)
    if p.centre is not None:
        a, b, c = p.centre
        view = source(a)[:, b * d1 : b * d1 + width]
        if c == 1:
            target += view
        elif c == -1:
            target -= view
        else:
            np.multiply(view, target.dtype.type(c), out=scratch)
            target += scratch


def _scratch(name, shape, dtype):
    """A per-thread buffer reused across blocks: fresh allocations would page-fault."""
    size = int(np.prod(shape))
    buffers = _local.__dict__.setdefault("buffers", {})
    buffer = buffers.get((name, dtype))
    if buffer is None or buffer.size < size:
        buffer = buffers[(name, dtype)] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


def _gather(x, rows, cols, boundary, cval):
    """Rows ``[rows)`` and columns ``[cols)`` of ``x`` extended by ``boundary``."""
    height, width = x.shape[:2]
    row_index = np.arange(*rows)
    col_index = np.arange(*cols)
    if boundary != "constant":
        return x[
            np.ix_(
                boundary_indices(row_index, height, boundary),
                boundary_indices(col_index, width, boundary),
            )
        ]
    block = np.full((len(row_index), len(col_index), x.shape[2]), cval, dtype=x.dtype)
    r_in = (max(rows[0], 0), min(rows[1], height))
    c_in = (max(cols[0], 0), min(cols[1], width))
    if r_in[0] < r_in[1] and c_in[0] < c_in[1]:
        block[r_in[0] - rows[0] : r_in[1] - rows[0], c_in[0] - cols[0] : c_in[1] - cols[0]] = x[
            r_in[0] : r_in[1], c_in[0] : c_in[1]
        ]
    return block


def _weighted_sum(out, terms, scratch):
    """``out = sum(w * view)`` with as few passes as possible: ±1 weights are adds.

    A view may be given as a function returning it, called only when its term is
    added, so gathered sources need not all exist at once.
    """
    ordered = [(_view(v), w) if i < 2 else (v, w) for i, (v, w) in enumerate(_by_weight(terms))]
    dtype = out.dtype.type
    first, weight = ordered[0]
    rest = ordered[1:]
    if rest and abs(weight) == 1 and abs(rest[0][1]) == 1:
        second, weight2 = rest.pop(0)
        if weight == 1 and weight2 == 1:
            np.add(first, second, out=out)
        elif weight == 1:
            np.subtract(first, second, out=out)
        elif weight2 == 1:
            np.subtract(second, first, out=out)
        else:
            np.multiply(first, dtype(-1), out=out)
            np.subtract(out, second, out=out)
    elif weight == 1:
        np.copyto(out, first)
    elif weight == -1:
        # Not np.negative: numpy 2.4 gets it wrong in place on strided float32 views.
        np.multiply(first, dtype(-1), out=out)
    else:
        np.multiply(first, dtype(weight), out=out)
    for view, weight in rest:
        view = _view(view)
        if weight == 1:
            np.add(out, view, out=out)
        elif weight == -1:
            np.subtract(out, view, out=out)
        else:
            np.multiply(view, dtype(weight), out=scratch)
            np.add(out, scratch, out=out)


def _by_weight(terms):
    # Stable: terms of one kernel row stay together, so each source is gathered once
    # per weight class.
    return sorted(terms, key=lambda t: abs(t[1]) != 1)


def _view(term):
    return term() if callable(term) else term
