"""What a stack's band holds, measured, against the streaming path's estimate.

``BandPlan.working_memory`` sets the band height under ``--max-memory``: it must not
promise less than a band takes (``compute_band`` would then overrun the budget), nor
many times more (bands would be needlessly short, and recompute their halo more
often). numpy reports its arrays to ``tracemalloc``, so the peak of the arrays a band
allocates is measured directly; the band's index arrays and Python objects (some
10 KB, whatever the width) are left to a fixed allowance.
"""

import tracemalloc

import numpy as np
import pytest

from dilcli.core import stacks, tiling
from dilcli.core.layers import Layer

RNG = np.random.default_rng(21)
BOOKKEEPING_BYTES = 64 * 1024


def measured_peak(plan, band, read_rows):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        tiling.compute_band(plan, band, read_rows)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def dense_context(channels):
    """The basic module's geometry with dense weights: every tap counts."""
    return [
        Layer(RNG.normal(0, 0.1, layer.weights.shape), layer.dilation, relu=layer.relu)
        for layer in stacks.context_basic(channels)
    ]


@pytest.mark.parametrize(
    "layers, emit",
    [
        (dense_context(6), {8}),
        (stacks.context_basic(6), {8}),
        (stacks.starlet_layers(3), {0, 1, 2, 3}),
    ],
    ids=["dense context", "identity context", "starlet"],
)
def test_band_estimate_covers_what_a_band_holds(layers, emit, monkeypatch):
    # Channel mixing's scratch is made afresh for every chunk (not kept per thread
    # from earlier work), so that the measure sees it.
    monkeypatch.setattr(stacks, "_scratch", lambda name, shape, dtype: np.empty(shape, dtype))
    channels = () if layers[0].weights.ndim == 2 else (layers[0].weights.shape[1],)
    x = RNG.random((150, 1000, *channels)).astype(np.float32)
    steps = tiling.chain(layers, boundary="reflect")
    plan = tiling.plan_bands(steps, x.shape, emit=emit, budget=0, band_rows=24)

    def read_rows(r0, r1):  # a reader's rows are a fresh array, as the file readers'
        return x[r0:r1].copy()

    tiling.compute_band(plan, 0, read_rows)  # the engines' scratch, made once, kept
    estimate = plan.working_memory()
    for band in (0, plan.bands // 2, plan.bands - 1):
        peak = measured_peak(plan, band, read_rows)
        assert peak <= estimate + BOOKKEEPING_BYTES, (estimate, peak)
        assert estimate <= 3 * peak, (estimate, peak)


def test_mixing_scratch_follows_the_chunk_not_the_image():
    from dilcli.core.parallel import threads

    layer = stacks.context_basic(21)[0]
    row_bytes = 20000 * 21 * 4
    small = stacks.mixing_scratch_bytes(layer, 10, 20, 4)
    wide = stacks.mixing_scratch_bytes(layer, 1000, 20000, 4)
    # A chunk of tap values and the few input rows it spans, on each thread.
    assert small < wide <= threads() * (stacks._CHUNK_BYTES + 5 * row_bytes)
