"""Property tests of the core (hypothesis): random shapes, kernels, dilations, modes and
boundaries against the direct loop of tests/reference.py, on every engine.

Small arrays keep the loop reference fast; ``derandomize`` keeps CI reproducible.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose
from reference import direct_correlate

from dilcli.core import engine as engine_module
from dilcli.core.conv import BOUNDARIES, dilated_correlate

# Reporting a failure, hypothesis imports libcst, which warns; keep the failure visible.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict:DeprecationWarning")

ENGINES = ["compiled", "numpy"] if engine_module._cengine is not None else ["numpy"]
PROPERTIES = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    # the engine fixture is meant to hold for every example of a test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
values = st.floats(-4, 4, allow_nan=False, allow_subnormal=False, width=32)
# Weights of every size, exact zeros included (see test_a_tiny_weight_beside_ones_...).
weights = st.one_of(st.just(0.0), st.floats(-4, 4, allow_subnormal=False))


@pytest.fixture(params=ENGINES)
def engine(request):
    saved = engine_module.use_compiled
    engine_module.use_compiled = request.param == "compiled"
    yield request.param
    engine_module.use_compiled = saved


@st.composite
def problems(draw, spatial=None):
    """(x, kernel, dilation, mode, boundary, cval, flip) of any geometry, small."""
    spatial = spatial or draw(st.sampled_from([1, 2]))
    longest = 14 if spatial == 1 else 7
    shape = tuple(draw(st.integers(1, longest)) for _ in range(spatial))
    channels = draw(st.sampled_from([(), (1,), (3,)]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(arrays(dtype, shape + channels, elements=values))
    kernel = draw(
        arrays(np.float64, tuple(draw(st.integers(1, 4)) for _ in range(spatial)), elements=weights)
    )
    if spatial == 2 and draw(st.booleans()):
        dilation = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    else:
        dilation = draw(st.integers(1, 5))
    modes = ["same", "valid", "full"] + (["causal"] if spatial == 1 else [])
    mode = draw(st.sampled_from(modes))
    boundary = draw(st.sampled_from(BOUNDARIES))
    cval = draw(st.floats(-2, 2, allow_nan=False, width=32))
    return x, kernel, dilation, mode, boundary, cval, draw(st.booleans())


def tolerance(dtype):
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}


@PROPERTIES
@given(problem=problems())
def test_dilated_correlate_matches_the_direct_loop(engine, problem):
    x, kernel, dilation, mode, boundary, cval, flip = problem
    assume(engine != "numpy" or np.any(kernel))  # see test_an_all_zero_kernel_...
    options = dict(mode=mode, boundary=boundary, cval=cval, flip=flip)
    spans = (np.array(kernel.shape) - 1) * np.broadcast_to(dilation, kernel.ndim) + 1
    if mode == "causal" and boundary not in ("constant", "nearest"):
        with pytest.raises(ValueError, match="would look ahead"):
            dilated_correlate(x, kernel, dilation, **options)
        return
    if mode == "valid" and np.any(spans > np.array(x.shape[: kernel.ndim])):
        with pytest.raises(ValueError, match="'valid' output would be empty"):
            dilated_correlate(x, kernel, dilation, **options)
        return
    got = dilated_correlate(x, kernel, dilation, **options)
    weights = kernel[(slice(None, None, -1),) * kernel.ndim] if flip else kernel
    want = direct_correlate(x, weights, dilation, mode=mode, boundary=boundary, cval=cval)
    assert got.dtype == (np.float64 if x.dtype == np.float64 else np.float32)
    assert got.shape == want.shape
    assert_allclose(got, want, **tolerance(x.dtype))


@PROPERTIES
@given(problem=problems(spatial=2))
def test_dilation_is_the_zero_stuffed_kernel_at_dilation_one(engine, problem):
    """À trous: a kernel at dilation d is its 'holed' version ((k-1)d+1 wide) at d=1."""
    x, kernel, dilation, mode, boundary, cval, _ = problem
    assume(engine != "numpy" or np.any(kernel))  # see test_an_all_zero_kernel_...
    rows, columns = np.broadcast_to(dilation, 2)
    holed = np.zeros(((kernel.shape[0] - 1) * rows + 1, (kernel.shape[1] - 1) * columns + 1))
    holed[::rows, ::columns] = kernel
    try:
        got = dilated_correlate(x, kernel, (rows, columns), mode=mode, boundary=boundary, cval=cval)
    except ValueError:
        return  # an empty 'valid' output: checked above
    want = dilated_correlate(x, holed, 1, mode=mode, boundary=boundary, cval=cval)
    assert_allclose(got, want, **tolerance(x.dtype))


@PROPERTIES
@given(problem=problems(spatial=2), a=values, b=values)
def test_correlation_is_linear_and_wrap_is_shift_equivariant(engine, problem, a, b):
    x, kernel, dilation, _, boundary, _, _ = problem
    assume(engine != "numpy" or np.any(kernel))  # see test_an_all_zero_kernel_...
    y = np.roll(x[::-1], 1, axis=1)  # another input of the same shape
    options = dict(mode="same", boundary=boundary)
    combined = dilated_correlate(a * x + b * y, kernel, dilation, **options)
    separate = a * dilated_correlate(x, kernel, dilation, **options)
    separate += b * dilated_correlate(y, kernel, dilation, **options)
    scale = 1 + np.abs(x).max() + np.abs(y).max()
    assert_allclose(combined, separate, atol=1e-3 * scale * np.abs(kernel).sum() * 4 + 1e-9)
    wrapped = dilated_correlate(x, kernel, dilation, mode="same", boundary="wrap")
    shifted = dilated_correlate(
        np.roll(x, (1, 2), axis=(0, 1)), kernel, dilation, mode="same", boundary="wrap"
    )
    assert_allclose(np.roll(wrapped, (1, 2), axis=(0, 1)), shifted, **tolerance(x.dtype))


@PROPERTIES
@given(problem=problems())
def test_an_impulse_gives_back_the_dilated_kernel(engine, problem):
    _, kernel, dilation, _, _, _, _ = problem
    assume(engine != "numpy" or np.any(kernel))  # see test_an_all_zero_kernel_...
    steps = np.broadcast_to(dilation, kernel.ndim)
    spans = (np.array(kernel.shape) - 1) * steps + 1
    impulse = np.zeros(tuple(spans))
    impulse[(0,) * kernel.ndim] = 1.0
    response = dilated_correlate(impulse, kernel, dilation, mode="full", boundary="constant")
    # y[i] = sum_t w[t] x[i + t d - o], o = span - 1: the impulse meets tap t at i = o - t d
    taps = tuple(
        slice(int(span) - 1, None, -int(step)) for span, step in zip(spans, steps, strict=True)
    )
    reached = response[taps]
    assert_allclose(reached, kernel, rtol=1e-6, atol=1e-6)


def test_an_all_zero_kernel_gives_zeros_on_the_numpy_engine():
    saved = engine_module.use_compiled
    engine_module.use_compiled = False
    try:
        result = dilated_correlate(np.ones((3, 4), np.float32), np.zeros((2, 2)), 2)
    finally:
        engine_module.use_compiled = saved
    assert not result.any()


def test_a_tiny_weight_beside_ones_on_the_numpy_engine():
    kernel = np.ones((3, 3))
    kernel[0, 0] = 3.84107318e-30  # found by test_correlation_is_linear_...[numpy]
    saved = engine_module.use_compiled
    engine_module.use_compiled = False
    try:
        with np.errstate(all="ignore"):
            result = dilated_correlate(np.ones((4, 5), np.float32), kernel, 1)
    finally:
        engine_module.use_compiled = saved
    assert_allclose(result, 8.0)
