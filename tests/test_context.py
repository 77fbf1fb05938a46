import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from reference import direct_correlate
from scipy import ndimage

from dilcli.core.conv import BOUNDARIES, dilated_correlate
from dilcli.core.kernels import B3SPLINE, LAPLACIAN
from dilcli.core.stacks import (
    CONTEXT_DILATIONS,
    LARGE_CHANNEL_FACTORS,
    ChannelError,
    Layer,
    can_be_negative,
    context_basic,
    context_large,
    forward,
    iterate_layers,
    kernel_stack,
    random_stack,
    stack_from_arrays,
    starlet,
)

RNG = np.random.default_rng(3)


def direct_stack(x, weights, biases, dilations, relus, mode="same", boundary="reflect", cval=0.0):
    """The stack by its definition: per output channel, a sum over input channels of
    direct-loop correlations, plus the bias, then the ReLU. float64 throughout."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., np.newaxis]
    for w, b, d, relu in zip(weights, biases, dilations, relus, strict=True):
        c_out, c_in = w.shape[:2]
        planes = []
        for o in range(c_out):
            total = sum(
                direct_correlate(x[..., i], w[o, i], d, mode=mode, boundary=boundary, cval=cval)
                for i in range(c_in)
            )
            planes.append(total + (0.0 if b is None else b[o]))
        x = np.stack(planes, axis=-1)
        if relu:
            x = np.maximum(x, 0)
    return x


def random_weights(channels, sizes, dilations, with_bias=True):
    arrays = {"dilations": np.array(dilations)}
    for i, ((c_in, c_out), size) in enumerate(
        zip(zip(channels[:-1], channels[1:], strict=True), sizes, strict=True)
    ):
        arrays[f"weight_{i}"] = RNG.normal(size=(c_out, c_in, *size))
        if with_bias:
            arrays[f"bias_{i}"] = RNG.normal(scale=0.3, size=c_out)
    return arrays


# --- the paper's module ---------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 21])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_context_basic_identity_returns_input_exactly(channels, boundary):
    x = RNG.random((19, 23, channels)).astype(np.float32)
    outputs = forward(x, context_basic(channels), boundary=boundary)
    assert len(outputs) == 8
    for output in outputs:
        assert output.dtype == np.float32
        assert_array_equal(output, x)


def test_context_basic_follows_table_1():
    layers = context_basic(4)
    assert [layer.dilation for layer in layers] == list(CONTEXT_DILATIONS)
    assert [layer.kernel_shape for layer in layers] == [(3, 3)] * 7 + [(1, 1)]
    assert [layer.relu for layer in layers] == [True] * 7 + [False]
    assert all(layer.weights.shape[:2] == (4, 4) for layer in layers)


def test_context_basic_on_two_dimensional_input_gives_one_channel():
    x = RNG.random((9, 11))
    outputs = forward(x, context_basic(1))
    assert outputs[-1].shape == (9, 11, 1)
    assert_array_equal(outputs[-1][..., 0], x)


@pytest.mark.parametrize("channels", [1, 3])
def test_context_large_has_table_1_channels_and_passes_input_without_noise(channels):
    x = RNG.random((17, 15, channels)).astype(np.float32)
    outputs = forward(x, context_large(channels, noise=0))
    assert [o.shape[2] for o in outputs] == [f * channels for f in LARGE_CHANNEL_FACTORS]
    assert_allclose(outputs[-1], x, rtol=0, atol=1e-6)


def test_context_large_identity_weights_follow_the_formula():
    channels = 3
    layers = context_large(channels, noise=0)
    counts = [channels] + [f * channels for f in LARGE_CHANNEL_FACTORS]
    for number, layer in enumerate(layers):
        c_in, c_out = counts[number], counts[number + 1]
        centre = layer.weights.shape[2] // 2
        for b in range(c_out):
            for a in range(c_in):
                same = (a * channels) // c_in == (b * channels) // c_out
                want = channels / c_out if same else 0.0
                assert layer.weights[b, a, centre, centre] == want
        off_centre = layer.weights.copy()
        off_centre[:, :, centre, centre] = 0
        assert not off_centre.any()


def test_context_large_noise_is_small_and_follows_the_seed():
    first, again, other = (
        context_large(2, seed=5),
        context_large(2, seed=5),
        context_large(2, seed=6),
    )
    for a, b, c in zip(first, again, other, strict=True):
        assert_array_equal(a.weights, b.weights)
        assert not np.array_equal(a.weights, c.weights)
    clean = context_large(2, noise=0)
    for noisy, exact in zip(first, clean, strict=True):
        scale = exact.weights.max()  # C / c_(l+1)
        assert 0 < np.abs(noisy.weights - exact.weights).max() < 0.01 * scale
    x = RNG.random((12, 12, 2))
    assert_allclose(forward(x, first)[-1], x, atol=0.01)


# --- trained weights against the definition ------------------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["same", "valid", "full"])
def test_weights_stack_matches_direct_loop_reference(boundary, mode):
    arrays = random_weights([3, 4, 5, 2], [(3, 3), (3, 3), (1, 1)], [1, 2, 3])
    layers = stack_from_arrays(arrays)
    x = RNG.random((13, 14, 3))
    got = forward(x, layers, mode=mode, boundary=boundary, cval=0.25)
    weights = [arrays[f"weight_{i}"] for i in range(3)]
    biases = [arrays[f"bias_{i}"] for i in range(3)]
    want = direct_stack(x, weights, biases, [1, 2, 3], [True, True, False], mode, boundary, 0.25)
    assert got[-1].dtype == np.float64
    assert_allclose(got[-1], want, rtol=1e-10, atol=1e-10)
    # Every intermediate output too: the first two layers alone.
    want_second = direct_stack(
        x, weights[:2], biases[:2], [1, 2], [True, True], mode, boundary, 0.25
    )
    assert_allclose(got[1], want_second, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("boundary", ["constant", "reflect"])
def test_weights_stack_in_float32_within_1e_5(boundary):
    arrays = random_weights([4, 6, 6, 3], [(3, 3), (2, 4), (3, 3)], [2, 1, 4])
    layers = stack_from_arrays(arrays)
    x = RNG.random((16, 12, 4)).astype(np.float32)
    got = forward(x, layers, boundary=boundary)[-1]
    weights = [arrays[f"weight_{i}"] for i in range(3)]
    biases = [arrays[f"bias_{i}"] for i in range(3)]
    want = direct_stack(x, weights, biases, [2, 1, 4], [True, True, False], boundary=boundary)
    assert got.dtype == np.float32
    # Sums of terms up to |want| ~ 100-300 round in float32 at ~1e-7 of that scale, in
    # any order of summation (BLAS sums taps and channels in its own order).
    assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_weights_stack_without_truncation_has_no_relu():
    arrays = random_weights([2, 3, 2], [(3, 3), (3, 3)], [1, 2])
    layers = stack_from_arrays(arrays, relu=False)
    assert [layer.relu for layer in layers] == [False, False]
    x = RNG.random((10, 10, 2))
    want = direct_stack(
        x,
        [arrays["weight_0"], arrays["weight_1"]],
        [arrays["bias_0"], arrays["bias_1"]],
        [1, 2],
        [False, False],
    )
    assert_allclose(forward(x, layers)[-1], want, rtol=1e-10, atol=1e-10)


def test_constant_boundary_equals_zero_padding_then_valid():
    # A framework's conv2d(padding=k//2 * d) zero-pads each layer's input: the same as
    # padding with zeros by hand and taking the 'valid' part.
    arrays = random_weights([3, 5], [(3, 3)], [4])
    layer = stack_from_arrays(arrays)[0]
    x = RNG.random((11, 13, 3))
    padded = np.pad(x, ((4, 4), (4, 4), (0, 0)))
    same = forward(x, [layer], boundary="constant")[0]
    valid = forward(padded, [layer], mode="valid")[0]
    assert_allclose(same, valid, rtol=1e-12, atol=1e-12)


def test_stack_matches_torch_conv2d_with_zero_padding():
    torch = pytest.importorskip("torch")
    arrays = random_weights([3, 8, 8, 2], [(3, 3), (3, 3), (1, 1)], [1, 4, 1])
    x = RNG.random((20, 24, 3)).astype(np.float32)
    got = forward(x, stack_from_arrays(arrays), boundary="constant")[-1]
    y = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    for i, d in enumerate([1, 4, 1]):
        w = torch.from_numpy(arrays[f"weight_{i}"].astype(np.float32))
        b = torch.from_numpy(arrays[f"bias_{i}"].astype(np.float32))
        y = torch.nn.functional.conv2d(y, w, b, padding=(w.shape[-1] // 2) * d, dilation=d)
        if i < 2:
            y = torch.relu(y)
    assert_allclose(got, y[0].numpy().transpose(1, 2, 0), rtol=1e-5, atol=1e-5)


def test_flip_is_true_convolution():
    arrays = random_weights([2, 3], [(3, 3)], [2], with_bias=False)
    x = RNG.random((9, 9, 2))
    flipped = {**arrays, "weight_0": arrays["weight_0"][:, :, ::-1, ::-1]}
    got = forward(x, stack_from_arrays(arrays), flip=True)[0]
    assert_allclose(got, forward(x, stack_from_arrays(flipped))[0], rtol=1e-12)


def test_all_zero_weights_give_zeros_plus_bias():
    layer = Layer(np.zeros((2, 3, 3, 3)), 2, bias=np.array([0.5, -1.0]))
    out = forward(RNG.random((5, 6, 3)), [layer])[0]
    assert_array_equal(out, np.broadcast_to([0.5, -1.0], (5, 6, 2)))


@pytest.mark.parametrize("shape", [(80, 37, 3), (3, 1500, 3)])
def test_chunks_do_not_change_the_result(monkeypatch, shape):
    from dilcli.core import stacks

    arrays = random_weights([3, 4], [(3, 3)], [3])
    layers = stack_from_arrays(arrays)
    x = RNG.random(shape)
    whole = forward(x, layers, boundary="wrap")[0]
    # Chunks of one product each: runs of pixels that start and end inside rows.
    monkeypatch.setattr(stacks, "_CHUNK_BYTES", 1)
    assert_array_equal(forward(x, layers, boundary="wrap")[0], whole)
    want = direct_stack(x, [arrays["weight_0"]], [arrays["bias_0"]], [3], [False], boundary="wrap")
    assert_allclose(whole, want, rtol=1e-10, atol=1e-10)


# --- channel checks and weight files -------------------------------------------------


def test_channel_mismatch_is_a_clear_error_before_any_work():
    layers = stack_from_arrays(random_weights([4, 2], [(3, 3)], [1]))
    with pytest.raises(ChannelError, match=r"input has 3 channels, but the weights expect 4"):
        next(iterate_layers(RNG.random((8, 8, 3)), layers))
    with pytest.raises(ChannelError, match=r"input has 1 channel, but"):
        forward(RNG.random((8, 8)), layers)


def test_chained_channel_mismatch_names_the_layers():
    layers = [Layer(np.ones((3, 2, 3, 3))), Layer(np.ones((2, 4, 1, 1)))]
    with pytest.raises(ChannelError, match="layer 2 expects 4 input channels but layer 1 gives 3"):
        forward(RNG.random((5, 5, 2)), layers)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("dilations"), "need an array 'dilations'"),
        (lambda a: a.pop("weight_1"), "lack 'weight_1'"),
        (lambda a: a.update(weight_2=np.ones((1, 1, 1, 1))), "unexpected array 'weight_2'"),
        (lambda a: a.update(dilations=np.array([1.5, 2.0])), "1-D array of integers"),
        (lambda a: a.update(dilations=np.array([1, 0])), "layer 1 .*dilation must be a positive"),
        (lambda a: a.update(weight_0=np.ones((3, 3))), r"'weight_0' must be \(C_out, C_in, k, k\)"),
        (lambda a: a.update(weight_1=np.ones((2, 5, 3, 3))), "'weight_1' expects 5 input channels"),
        (lambda a: a.update(bias_0=np.ones(7)), r"bias of shape \(7,\) does not fit"),
        (lambda a: a.update(weight_0=np.full((4, 3, 3, 3), np.nan)), "finite"),
    ],
)
def test_stack_from_arrays_refuses_bad_files_clearly(change, message):
    arrays = random_weights([3, 4, 2], [(3, 3), (3, 3)], [1, 2])
    change(arrays)
    with pytest.raises(ValueError, match=message):
        stack_from_arrays(arrays)


def test_layer_refuses_bad_shapes_and_dilations():
    with pytest.raises(ValueError, match="must be"):
        Layer(np.ones((3, 3, 3, 3, 3)))
    with pytest.raises(ValueError, match="dilation must be a positive integer"):
        Layer(np.ones((3, 3)), 0)
    with pytest.raises(ValueError, match="dilation must be a positive integer"):
        Layer(np.ones((3, 3)), 1.5)


# --- kernel stacks (the seed's multi-scale stack) -------------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kernel_stack_is_the_kernel_applied_layer_after_layer(boundary):
    x = RNG.random((20, 18, 3)).astype(np.float32)
    outputs = forward(x, kernel_stack(LAPLACIAN, [1, 2, 4, 8]), boundary=boundary)
    want = x
    for output, dilation in zip(outputs, [1, 2, 4, 8], strict=True):
        want = dilated_correlate(want, LAPLACIAN, dilation, boundary=boundary)
        assert output.shape == x.shape
        assert_array_equal(output, want)


def test_stacks_accept_views_and_fortran_arrays():
    x = RNG.random((3, 12, 10)).astype(np.float32)
    channel_view, fortran = x[1], np.asfortranarray(x.transpose(1, 2, 0))
    want = dilated_correlate(np.ascontiguousarray(channel_view), LAPLACIAN, 2)
    assert_array_equal(forward(channel_view, kernel_stack(LAPLACIAN, [2]))[0], want)
    assert_array_equal(forward(fortran, context_basic(3))[-1], fortran)


def test_kernel_stack_per_channel_matches_direct_loop():
    x = RNG.random((9, 10, 2))
    kernel = RNG.normal(size=(3, 3))
    got = forward(x, kernel_stack(kernel, [1, 3], relu=True))
    eye = np.eye(2)[:, :, None, None] * kernel  # per channel == diagonal channel mixing
    want = direct_stack(x, [eye, eye], [None, None], [1, 3], [True, False])
    assert_allclose(got[-1], want, rtol=1e-10, atol=1e-10)


def test_random_stack_reproduces_the_seed_notebook_kernels():
    np_state = np.random.RandomState(42)  # the notebook: np.random.seed(42); randn(k, k) * 0.1
    want = [np_state.randn(3, 3) * 0.1 for _ in range(4)]
    layers = random_stack([1, 2, 4, 8], seed=42)
    for layer, kernel in zip(layers, want, strict=True):
        assert_array_equal(layer.weights, kernel)
    assert [layer.dilation for layer in layers] == [1, 2, 4, 8]
    assert not any(layer.relu for layer in layers)


def test_can_be_negative_follows_weights_and_truncation():
    assert can_be_negative(kernel_stack(LAPLACIAN, [1, 2])) == [True, True]
    assert can_be_negative(kernel_stack(B3SPLINE, [1, 2])) == [False, False]
    assert can_be_negative(kernel_stack(B3SPLINE, [1]), input_negative=True) == [True]
    assert can_be_negative(context_basic(2)) == [False] * 8
    assert can_be_negative(context_large(2))[-1] is True


# --- the à trous wavelet -----------------------------------------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("levels", [1, 3, 6])
@pytest.mark.parametrize("shape", [(40, 33), (24, 20, 3)])
def test_starlet_planes_sum_back_to_the_input(boundary, levels, shape):
    x = RNG.random(shape).astype(np.float32)
    planes, residual = starlet(x, levels, boundary=boundary)
    assert len(planes) == levels
    assert all(p.shape == x.shape and p.dtype == np.float32 for p in planes)
    assert_allclose(residual + sum(planes), x, rtol=0, atol=1e-5)


def test_starlet_smooths_with_the_b3_spline_at_doubling_dilations():
    x = RNG.random((30, 30))
    planes, residual = starlet(x, 2)
    c1 = ndimage.correlate(x, B3SPLINE, mode="reflect")
    stuffed = np.zeros((9, 9))
    stuffed[::2, ::2] = B3SPLINE
    c2 = ndimage.correlate(c1, stuffed, mode="reflect")
    assert_allclose(planes[0], x - c1, atol=1e-12)
    assert_allclose(residual, c2, atol=1e-12)
    assert_allclose(planes[1], c1 - c2, atol=1e-12)


def test_starlet_of_a_constant_has_zero_planes():
    planes, residual = starlet(np.full((16, 16), 0.3), 4)
    assert_allclose(residual, 0.3, atol=1e-12)
    for plane in planes:
        assert_allclose(plane, 0, atol=1e-12)


def test_starlet_refuses_zero_levels():
    with pytest.raises(ValueError, match="levels must be a positive integer"):
        starlet(np.zeros((4, 4)), 0)
