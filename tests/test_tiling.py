"""Streaming in bands of rows equals the whole-image computation, bit for bit.

Every comparison is ``np.array_equal`` against the library's own whole-image result
(``apply_kernel``, ``forward``, ``starlet``), which tests/test_conv.py and
tests/test_context.py check against direct loops over the definition.
"""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dilcli.core import stacks, tiling
from dilcli.core.conv import apply_kernel
from dilcli.core.kernels import Kernel, named_kernel
from dilcli.vocab import BOUNDARIES, MODES

RNG = np.random.default_rng(13)
CVAL = 0.3


def streamed(x, steps, emit, band_rows):
    """Every emitted output, assembled from its bands in order."""
    plan = tiling.plan_bands(steps, x.shape, emit=emit, budget=0, band_rows=band_rows)
    parts = {n: [] for n in emit}
    for _, rows in tiling.iterate_bands(plan, lambda r0, r1: x[r0:r1]):
        for n in emit:
            parts[n].append(rows[n])
    return {n: np.concatenate(parts[n]) for n in emit}


def assert_identical(got, expected):
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected), f"max difference {np.abs(got - expected).max()}"


def image(shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(13, 7), (6, 9, 3), (9, 1, 2)])
def test_kernel_bands_equal_whole_image(boundary, mode, shape):
    x = image(shape)
    cases = itertools.product(["laplacian", "sobel"], [1, 3, 20], [False, True])
    for name, dilation, flip in cases:
        kernel = named_kernel(name)
        options = dict(mode=mode, boundary=boundary, cval=CVAL, flip=flip)
        try:
            whole = apply_kernel(x, kernel, dilation, **options)
        except ValueError:  # 'valid' wider than the image: refused alike (below)
            with pytest.raises(ValueError):
                tiling.plan_bands([tiling.KernelStep(kernel, dilation, **options)], x.shape,
                                  emit={1}, budget=0, band_rows=1)  # fmt: skip
            continue
        step = tiling.KernelStep(kernel, dilation, **options)
        for band_rows in (1, 2, 5):
            assert_identical(streamed(x, [step], {1}, band_rows)[1], whole)


def test_dilation_far_larger_than_the_image_reads_blocks_not_the_span():
    x = image((11, 8, 2))
    kernel = Kernel("asym", (np.arange(15.0).reshape(5, 3) - 7,))
    step = tiling.KernelStep(kernel, 1000, boundary="wrap")
    plan = tiling.plan_bands([step], x.shape, emit={1}, budget=0, band_rows=2)
    # Five blocks of two rows, not a stretch of 4002 rows.
    assert plan.working_memory() < 5 * 2 * 8 * 2 * 4 * 4
    whole = apply_kernel(x, kernel, 1000, boundary="wrap")
    assert_identical(streamed(x, [step], {1}, 2)[1], whole)


def test_several_dilations_read_the_input_once_per_band():
    x = image((17, 10))
    kernel = named_kernel("laplacian")
    steps = [tiling.KernelStep(kernel, d, boundary="mirror") for d in (1, 2, 4, 8)]
    reads = []

    def read(r0, r1):
        reads.append((r0, r1))
        return x[r0:r1]

    plan = tiling.plan_bands(steps, x.shape, emit={1, 2, 3, 4}, budget=0, band_rows=6)
    outputs = {n: [] for n in range(1, 5)}
    for _, rows in tiling.iterate_bands(plan, read):
        for n in outputs:
            outputs[n].append(rows[n])
    for n, d in enumerate((1, 2, 4, 8), 1):
        whole = apply_kernel(x, kernel, d, boundary="mirror")
        assert_identical(np.concatenate(outputs[n]), whole)
    assert plan.bands == 3
    assert len(reads) <= 2 * plan.bands  # one run per band (two where mirror folds back)


STACKS = {
    "context-basic": lambda c: stacks.context_basic(c),
    "context-large": lambda c: stacks.context_large(c, seed=1),
    "random": lambda c: stacks.random_stack([1, 2, 4, 8], seed=42, relu=True),
    "weights-bias": lambda c: [
        stacks.Layer(RNG.standard_normal((4, c, 3, 2)), 2, bias=RNG.standard_normal(4), relu=True),
        stacks.Layer(RNG.standard_normal((2, 4, 1, 3)), 5, relu=False),
    ],
}


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(STACKS))
def test_fused_stack_bands_equal_every_layer_of_the_whole_image(name, mode, boundary):
    channels = 1 if name == "context-large" else 2  # 32 channels wide inside already
    x = np.abs(image((19, 6, channels)))
    layers = STACKS[name](channels)
    for flip in (False, True):
        options = dict(mode=mode, boundary=boundary, cval=CVAL, flip=flip)
        try:
            whole = stacks.forward(x, layers, **options)
        except ValueError:
            continue
        steps = tiling.chain(layers, **options)
        emit = set(range(1, len(steps) + 1))
        for band_rows in (4,) if name == "context-large" else (1, 4):
            got = streamed(x, steps, emit, band_rows)
            for number, expected in enumerate(whole, 1):
                assert_identical(got[number], expected)


def test_final_layer_alone_is_computed_on_the_rows_it_needs():
    x = image((40, 5, 3))
    layers = stacks.context_basic(3)
    steps = tiling.chain(layers, boundary="wrap")
    plan = tiling.plan_bands(steps, x.shape, emit={len(steps)}, budget=0, band_rows=4)
    needed = plan.needs(5)
    # Receptive field 67 > 40 rows with wrap: the input rows are every row, but the
    # last layers need only the band (layer 6 adds a 1-row halo for layer 7).
    assert len(needed[-1]) == len(needed[-2]) == 4 and len(needed[-3]) == 6
    whole = stacks.forward(x, layers, boundary="wrap")[-1]
    assert_identical(streamed(x, steps, {len(steps)}, 4)[len(steps)], whole)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("channels", [None, 1, 3])
def test_starlet_bands_equal_planes_and_residual(boundary, channels):
    shape = (21, 9) if channels is None else (21, 9, channels)
    x = np.abs(image(shape))
    levels = 4
    planes, residual = stacks.starlet(x, levels, boundary=boundary, cval=CVAL)
    steps = tiling.chain(stacks.starlet_layers(levels), boundary=boundary, cval=CVAL)
    emit = set(range(levels + 1))  # the input too: w_1 = c_0 - c_1
    for band_rows in (1, 5):
        got = streamed(x, steps, emit, band_rows)
        for j in range(1, levels + 1):
            assert_identical(got[j - 1] - got[j], planes[j - 1])
        assert_identical(got[levels], residual)


def test_bands_partition_every_output_once():
    kernel = named_kernel("laplacian")
    steps = [tiling.KernelStep(kernel, 3, mode="full"), tiling.KernelStep(kernel, 2, mode="valid")]
    plan = tiling.plan_bands(steps, (23, 8), emit={1, 2}, budget=0, band_rows=5)
    for number, height in ((0, 23), (1, 29), (2, 19)):
        ranges = [plan.ranges(band)[number] for band in range(plan.bands)]
        assert ranges[0][0] == 0 and ranges[-1][1] == height
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_band_height_follows_the_budget():
    kernel = named_kernel("laplacian")
    steps = [tiling.KernelStep(kernel, d) for d in (1, 2, 4, 8)]
    shape = (4000, 1000)
    small = tiling.plan_bands(steps, shape, emit={1, 2, 3, 4}, budget=8 << 20)
    large = tiling.plan_bands(steps, shape, emit={1, 2, 3, 4}, budget=64 << 20)
    assert small.working_memory() <= 8 << 20 < large.working_memory() <= 64 << 20
    assert small.band_rows < large.band_rows
    assert small.halo() == (8, 8)
    everything = tiling.plan_bands(steps, shape, emit={1, 2, 3, 4}, budget=1 << 40)
    assert everything.bands == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 14),
    width=st.integers(1, 6),
    channels=st.sampled_from([None, 1, 2]),
    kernel_shape=st.tuples(st.integers(1, 4), st.integers(1, 3)),
    dilation=st.integers(1, 30),
    mode=st.sampled_from(MODES),
    boundary=st.sampled_from(BOUNDARIES),
    band_rows=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_and_dilations_stream_exactly(
    height, width, channels, kernel_shape, dilation, mode, boundary, band_rows, seed
):
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = Kernel("random", (rng.standard_normal(kernel_shape),))
    options = dict(mode=mode, boundary=boundary, cval=CVAL)
    try:
        whole = apply_kernel(x, kernel, dilation, **options)
    except ValueError:
        return
    layers = [stacks.Layer(rng.standard_normal((2, channels or 1) + kernel_shape), dilation)]
    got = streamed(x, [tiling.KernelStep(kernel, dilation, **options)], {1}, band_rows)
    assert_identical(got[1], whole)
    try:
        mixed = stacks.forward(x, layers, **options)[0]
    except ValueError:
        return
    assert_identical(streamed(x, tiling.chain(layers, **options), {1}, band_rows)[1], mixed)


def test_matrix_products_of_any_height_round_alike():
    """Channel mixing cuts its products into one shape, so rows mix to the same bits
    however many rows a call holds (BLAS picks its kernel by the shape)."""
    x = image((70, 40, 96))
    layer = stacks.Layer(RNG.standard_normal((3, 96, 1, 1)), 1)
    whole = stacks.apply_layer(x, layer)
    for start, stop in ((0, 1), (3, 5), (10, 61)):
        assert_identical(stacks.apply_layer(x[start:stop], layer), whole[start:stop])


@pytest.mark.parametrize("layers", [1, 2, 4, 7])
def test_work_ratio_of_one_row_bands_is_the_depth_of_the_stack(layers):
    # A middle band of one output row, far from the edges: layer L computes 1 row,
    # layer L - 1 three, ..., layer 1 2L - 1: L^2 rows for the L rows the band owns.
    stack = [stacks.Layer(np.ones((3, 3), np.float32)) for _ in range(layers)]
    plan = tiling.plan_bands(tiling.chain(stack), (101, 9), emit={layers}, budget=0, band_rows=1)
    assert plan.work_ratio() == layers
    # convolve's steps all read the input: their halo is read, never computed
    kernel = named_kernel("laplacian")
    steps = tuple(tiling.KernelStep(kernel, d) for d in (1, 2, 4, 8))
    plan = tiling.plan_bands(steps, (101, 9), emit={1, 2, 3, 4}, budget=0, band_rows=1)
    assert plan.work_ratio() == 1.0
