import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from reference import direct_correlate
from scipy import ndimage

from dilcli.core import engine as engine_module
from dilcli.core import parallel
from dilcli.core.conv import BOUNDARIES, apply_kernel, dilated_correlate
from dilcli.core.kernels import named_kernel

RNG = np.random.default_rng(1)
ENGINES = ["compiled", "numpy"] if engine_module._cengine is not None else ["numpy"]


@pytest.fixture(autouse=True, params=ENGINES)
def engine(request, monkeypatch):
    """Every test runs on each engine: the compiled one (when built) and numpy."""
    monkeypatch.setattr(engine_module, "use_compiled", request.param == "compiled")
    return request.param


KERNELS_2D = {
    "random3x3": RNG.normal(size=(3, 3)),
    "even2x4": RNG.normal(size=(2, 4)),
    "separable": np.outer([1.0, -2.0, 0.5], [0.25, 1.0, 3.0]),  # takes the separable path
    "sparse": np.array([[0.0, 0, 1], [0, -2, 0], [1, 0, 0]]),  # zero taps skipped
}


@pytest.mark.parametrize("mode", ["same", "valid", "full"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dilation", [1, 2, 3, 8])
@pytest.mark.parametrize("kernel_name", list(KERNELS_2D))
@pytest.mark.parametrize("channels", [None, 3])
def test_dilated_correlate_2d_matches_direct_loop(mode, boundary, dilation, kernel_name, channels):
    kernel = KERNELS_2D[kernel_name]
    shape = (7, 9) if channels is None else (7, 9, channels)
    x = RNG.random(shape).astype(np.float32)
    span = (np.array(kernel.shape) - 1) * dilation + 1
    if mode == "valid" and np.any(span > np.array(shape[:2])):
        with pytest.raises(ValueError, match="'valid' output would be empty"):
            dilated_correlate(x, kernel, dilation, mode=mode, boundary=boundary)
        return
    got = dilated_correlate(x, kernel, dilation, mode=mode, boundary=boundary, cval=0.3)
    want = direct_correlate(x, kernel, dilation, mode=mode, boundary=boundary, cval=0.3)
    assert got.dtype == np.float32
    assert got.shape == want.shape
    assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["same", "valid", "full", "causal"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dilation", [1, 2, 3, 8])
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("channels", [None, 2])
def test_dilated_correlate_1d_matches_direct_loop(mode, boundary, dilation, k, channels):
    x = RNG.random(13 if channels is None else (13, channels))
    kernel = RNG.normal(size=k)
    if mode == "causal" and boundary not in ("constant", "nearest"):
        with pytest.raises(ValueError, match="causal"):
            dilated_correlate(x, kernel, dilation, mode=mode, boundary=boundary)
        return
    if mode == "valid" and (k - 1) * dilation + 1 > 13:
        with pytest.raises(ValueError, match="empty"):
            dilated_correlate(x, kernel, dilation, mode=mode, boundary=boundary)
        return
    got = dilated_correlate(x, kernel, dilation, mode=mode, boundary=boundary, cval=-1.5)
    want = direct_correlate(x, kernel, dilation, mode=mode, boundary=boundary, cval=-1.5)
    assert got.dtype == np.float64
    assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dilation", [1, 4, 9])
def test_dilated_correlate_matches_scipy_with_zero_stuffed_kernel(boundary, dilation):
    # scipy.ndimage is an independent implementation of the same boundaries; a kernel
    # with d-1 zeros between taps is the dilated kernel. Also spans wider than the image.
    x = RNG.random((12, 10))
    kernel = RNG.normal(size=(3, 3))
    stuffed = np.zeros(((3 - 1) * dilation + 1,) * 2)
    stuffed[::dilation, ::dilation] = kernel
    want = ndimage.correlate(x, stuffed, mode=boundary, cval=0.7)
    got = dilated_correlate(x, kernel, dilation, boundary=boundary, cval=0.7)
    assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dilation", [1, 2, 5])
def test_impulse_reproduces_dilated_kernel_convolution_upright_correlation_flipped(dilation):
    kernel = np.arange(1.0, 10.0).reshape(3, 3)
    x = np.zeros((21, 21))
    x[10, 10] = 1
    span = 2 * dilation + 1
    window = (slice(10 - dilation, 10 - dilation + span, dilation),) * 2
    correlated = dilated_correlate(x, kernel, dilation, boundary="constant")
    convolved = dilated_correlate(x, kernel, dilation, boundary="constant", flip=True)
    assert_array_equal(convolved[window], kernel)
    assert_array_equal(correlated[window], kernel[::-1, ::-1])
    assert correlated.sum() == kernel.sum()  # nothing but the dilated taps


def test_even_kernel_same_mode_puts_extra_sample_right_like_pytorch():
    # PyTorch padding='same' with kernel 2: left pad 0, right pad 1 -> y[i] = w0 x[i] + w1 x[i+1]
    x = np.array([1.0, 2.0, 4.0, 8.0])
    got = dilated_correlate(x, [1.0, 10.0], boundary="constant")
    assert_array_equal(got, [21.0, 42.0, 84.0, 8.0])


def test_causal_output_never_depends_on_the_future():
    x = RNG.random(64)
    kernel = RNG.normal(size=3)
    base = dilated_correlate(x, kernel, 4, mode="causal")
    for cut in (0, 10, 40, 63):
        changed = x.copy()
        changed[cut + 1 :] = RNG.random(63 - cut) * 100
        assert_array_equal(
            dilated_correlate(changed, kernel, 4, mode="causal")[: cut + 1], base[: cut + 1]
        )


def test_per_axis_dilation_matches_direct_loop():
    x = RNG.random((9, 11, 2)).astype(np.float32)
    kernel = RNG.normal(size=(3, 3))
    got = dilated_correlate(x, kernel, (1, 4), boundary="mirror")
    assert_allclose(
        got, direct_correlate(x, kernel, (1, 4), boundary="mirror"), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.uint8, np.float32),
        (np.uint16, np.float32),
        (np.float16, np.float32),
    ],
)
def test_output_dtype_follows_float_precision(dtype, expected):
    x = (RNG.random((5, 5)) * 100).astype(dtype)
    assert dilated_correlate(x, np.ones((3, 3))).dtype == expected


def test_uint8_input_does_not_overflow():
    x = np.full((5, 5), 255, dtype=np.uint8)
    assert_allclose(dilated_correlate(x, np.ones((3, 3))), 9 * 255.0)


def test_constant_image_gives_zero_laplacian_for_every_boundary_but_constant():
    x = np.full((8, 8), 0.6, dtype=np.float32)
    for boundary in ("reflect", "mirror", "nearest", "wrap"):
        assert_allclose(
            apply_kernel(x, named_kernel("laplacian"), 3, boundary=boundary), 0, atol=1e-6
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dilation": 0}, "dilation must be a positive integer"),
        ({"dilation": 1.5}, "dilation must be a positive integer"),
        ({"dilation": (1, 2, 3)}, "one int or 2 ints"),
        ({"mode": "circular"}, "mode must be one of"),
        ({"boundary": "periodic"}, "boundary must be one of"),
        ({"mode": "causal"}, "1-D signals only"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dilated_correlate(np.zeros((4, 4)), np.ones((3, 3)), **kwargs)


def test_input_shape_must_fit_the_kernel():
    with pytest.raises(ValueError, match="does not fit a 2-D kernel"):
        dilated_correlate(np.zeros(5), np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        dilated_correlate(np.zeros((4, 4)), [[np.nan]])


def test_gradient_pair_is_the_magnitude_of_scipy_sobel():
    x = RNG.random((16, 20))
    want = np.hypot(
        ndimage.sobel(x, axis=0, mode="reflect"), ndimage.sobel(x, axis=1, mode="reflect")
    )
    assert_allclose(apply_kernel(x, named_kernel("sobel"), 1), want, rtol=1e-12)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("kernel_name", ["laplacian", "sobel-x", "gaussian", "b3spline", "random"])
@pytest.mark.parametrize("dilation", [1, 5])
def test_many_strips_chunks_and_threads_match_scipy(monkeypatch, boundary, kernel_name, dilation):
    # Tiny strips and chunks force interior views, border gathers and thread hand-off.
    monkeypatch.setattr(engine_module, "STRIP_BYTES", 512)
    monkeypatch.setattr(engine_module, "CHUNK_VALUES", 37)
    monkeypatch.setattr(parallel, "_default_threads", 2)
    x = RNG.random((45, 61, 3)).astype(np.float32)
    kernel = (
        RNG.normal(size=(3, 3)) if kernel_name == "random" else named_kernel(kernel_name).parts[0]
    )
    stuffed = np.zeros((np.array(kernel.shape) - 1) * dilation + 1)
    stuffed[::dilation, ::dilation] = kernel
    want = np.stack(
        [
            ndimage.correlate(x[..., c].astype(np.float64), stuffed, mode=boundary, cval=0.25)
            for c in range(3)
        ],
        axis=-1,
    )
    got = dilated_correlate(x, kernel, dilation, boundary=boundary, cval=0.25)
    assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["same", "valid", "full", "causal"])
def test_long_signals_run_in_chunks(monkeypatch, mode):
    monkeypatch.setattr(engine_module, "CHUNK_VALUES", 64)
    monkeypatch.setattr(parallel, "_default_threads", 2)
    x = RNG.random((3000, 2))
    kernel = RNG.normal(size=4)
    boundary = "nearest" if mode == "causal" else "mirror"
    got = dilated_correlate(x, kernel, 7, mode=mode, boundary=boundary)
    assert_allclose(
        got, direct_correlate(x, kernel, 7, mode=mode, boundary=boundary), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("laplacian", "centre"),
        ("sobel-x", "separable"),
        ("gaussian", "separable"),
        ("laplacian4", "direct"),
    ],
)
def test_numpy_plans_choose_cheaper_forms(name, kind):
    plan = engine_module.plan(named_kernel(name).parts[0])
    assert {
        "centre": plan.centre is not None,
        "separable": bool(plan.column) and plan.centre is None,
        "direct": bool(plan.taps),
    }[kind]


def test_non_contiguous_input_gives_the_same_result():
    x = RNG.random((12, 14, 3)).astype(np.float32)
    kernel = RNG.normal(size=(3, 3))
    for view in (x[..., 1], x[::2, ::-1], np.moveaxis(x, 0, 1)):
        assert_array_equal(
            dilated_correlate(view, kernel, 2), dilated_correlate(view.copy(), kernel, 2)
        )


@pytest.mark.parametrize("width", [3, 4, 5, 7])
def test_kernels_of_minus_ones_on_narrow_float32_images(width):
    # numpy 2.4's in-place np.negative on strided float32 views gave wrong sums here.
    x = np.arange(6 * width, dtype=np.float32).reshape(6, width)
    for kernel in (np.ones((3, 3)), -np.ones((3, 3)), -np.ones((2, 3))):
        got = dilated_correlate(x, kernel, 1, boundary="constant")
        want = direct_correlate(x, kernel, 1, boundary="constant")
        assert_allclose(got, want, rtol=1e-6)


def test_a_named_kernel_object_is_accepted_where_weights_are():
    # dilated_correlate(img, named_kernel("laplacian"), 2) once failed with "got shape ()".
    image = np.random.default_rng(3).random((17, 19)).astype(np.float32)
    laplacian = named_kernel("laplacian")
    assert_allclose(
        dilated_correlate(image, laplacian, 2),
        direct_correlate(image, laplacian.parts[0], 2, "same", "reflect"),
        rtol=1e-5,
        atol=1e-5,
    )
    sobel = named_kernel("sobel")  # a gradient pair: the magnitude of its two responses
    gx, gy = (direct_correlate(image, part, 3, "same", "wrap") for part in sobel.parts)
    assert_allclose(
        dilated_correlate(image, sobel, 3, boundary="wrap"), np.hypot(gx, gy), rtol=1e-5, atol=1e-5
    )
