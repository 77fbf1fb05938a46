"""The tone map and its kernel-derived scale (dilcli.tone); benchmarks/saturation.py runs
the full check on every sample image."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from conftest import SAMPLES, run_cli
from numpy.testing import assert_allclose
from scipy.signal import convolve2d

from dilcli.core import stacks as stack_library
from dilcli.core.conv import apply_kernel
from dilcli.core.kernels import NAMED_KERNELS, kernel_from_array, named_kernel, parse_kernel_text
from dilcli.io.images import load_image
from dilcli.render import display, tone
from dilcli.render.display import quantize

WHITE = tone.ImageModel(exponent=0.0, blur=0.0)


# --- tone_map -------------------------------------------------------------------------


def test_zero_maps_to_zero_and_the_formula_holds():
    y = np.array([0.0, -0.0, 0.5, -0.5, 2.0, 1e-30], np.float32)
    t = tone.tone_map(y, 2.0)
    assert t[0] == 0 and t[1] == 0
    assert np.allclose(t, -np.expm1(-np.abs(y.astype(float)) / 2), rtol=1e-6, atol=0)


def test_monotone_in_abs_bounded_and_even():
    y = np.concatenate([[0.0], np.logspace(-12, 12, 20001), [np.finfo(np.float32).max]])
    for scale in (1e-6, 0.37, 1.0, 1e6):
        t = tone.tone_map(y, scale)
        assert np.all(np.diff(t) >= 0)
        assert t.min() >= 0 and t.max() <= 1
        assert np.array_equal(t, tone.tone_map(-y, scale))
    assert tone.tone_map(y, 1.0)[-1] == 1


def test_saturates_at_ln_510_scales():
    scale = 3.0
    below = quantize(tone.tone_map(np.array([0.999 * tone.SATURATION_U * scale]), scale), 8)
    above = quantize(tone.tone_map(np.array([1.001 * tone.SATURATION_U * scale]), scale), 8)
    assert below[0] == 254 and above[0] == 255


def test_never_nan():
    y = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0])
    t = tone.tone_map(y, 1.0)
    assert not np.isnan(t).any()
    assert t.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert tone.tone_map(np.array([1.0, 0.0]), 1e-300).tolist() == [1.0, 0.0]  # tiny scale


def test_float32_out_of_place_and_in_place_agree(rng):
    y = (rng.standard_normal((17, 23, 3)) * 5).astype(np.float32)
    copy = y.copy()
    t = tone.tone_map(y, 1.7)
    assert t.dtype == np.float32 and t.shape == y.shape
    assert np.array_equal(y, copy)  # input untouched
    same = tone.tone_map(y, 1.7, out=y)
    assert same is y and np.array_equal(y, t)
    out = np.empty(copy.shape, np.float32)
    assert tone.tone_map(copy.astype(np.float64), 1.7, out=out) is out
    assert np.array_equal(out, t)
    assert tone.tone_map(np.array([[0, -3, 4]], np.int16), 1.0).dtype == np.float32


@pytest.mark.parametrize("scale", [0, -1, math.inf, math.nan])
def test_scale_must_be_positive_and_finite(scale):
    with pytest.raises(ValueError, match="scale"):
        tone.tone_map(np.ones(3), scale)


def test_out_must_be_float32_of_the_shape():
    with pytest.raises(ValueError, match="out must be float32"):
        tone.tone_map(np.ones(3), 1.0, out=np.empty(3))
    with pytest.raises(ValueError, match="out must be float32"):
        tone.tone_map(np.ones(3), 1.0, out=np.empty(4, np.float32))


# --- the scale ------------------------------------------------------------------------


def test_identity_scale_is_the_model_images_rms():
    model = tone.NATURAL_IMAGES
    expected = tone.SCALE_PER_RMS * math.hypot(model.mean, model.std)
    assert tone.kernel_scale(named_kernel("identity")) == pytest.approx(expected, rel=1e-12)
    assert tone.kernel_scale([[2.0]], 7) == pytest.approx(2 * expected, rel=1e-12)


@pytest.mark.parametrize("name", ["laplacian", "laplacian4", "sobel-x", "prewitt-y"])
@pytest.mark.parametrize("dilation", [1, 3, 16, (2, 5)])
def test_zero_sum_kernel_on_white_noise_is_std_times_l2_norm(name, dilation):
    weights = named_kernel(name).parts[0]
    n = WHITE.size
    expected = WHITE.std * math.sqrt((weights**2).sum()) * n / math.sqrt(n * n - 1)
    assert tone.response_rms(weights, dilation, model=WHITE) == pytest.approx(expected, rel=1e-9)


def test_gradient_magnitude_adds_its_parts_in_quadrature():
    pair = named_kernel("sobel")
    for d in (1, 8):
        x, y = (tone.response_rms(part, d) for part in pair.parts)
        assert tone.response_rms(pair, d) == pytest.approx(math.hypot(x, y), rel=1e-12)
        assert tone.kernel_scale(pair, d) == pytest.approx(2 * math.hypot(x, y), rel=1e-12)


def test_scale_grows_with_dilation_for_natural_images():
    # A 1/f^2 image has more contrast at wider spacings; white noise does not.
    scales = [tone.kernel_scale(named_kernel("laplacian"), d) for d in (1, 2, 4, 8, 16)]
    assert all(a < b for a, b in zip(scales, scales[1:]))


def _dilated(weights, d):
    kh, kw = weights.shape
    out = np.zeros(((kh - 1) * d + 1, (kw - 1) * d + 1))
    out[::d, ::d] = weights
    return out


def test_stack_on_white_noise_is_the_composed_kernels_norm():
    weights = named_kernel("laplacian").parts[0]
    dilations = (1, 2, 4, 8)
    layers = stack_library.kernel_stack(weights, dilations)
    composed, expected = np.ones((1, 1)), []
    n = WHITE.size
    for d in dilations:
        composed = convolve2d(composed, _dilated(weights, d))
        expected.append(WHITE.std * np.sqrt((composed**2).sum()) * n / math.sqrt(n * n - 1))
    assert tone.stack_rms(layers, model=WHITE) == pytest.approx(expected, rel=1e-9)
    # The first layer alone is the kernel; a mixing layer of one channel is the same.
    assert tone.stack_scales(layers)[0] == pytest.approx(tone.kernel_scale(weights), rel=1e-12)
    mixing = [stack_library.Layer(weights[None, None], 2), stack_library.Layer(weights, 3)]
    single = [stack_library.Layer(weights, 2), stack_library.Layer(weights, 3)]
    assert tone.stack_rms(mixing) == pytest.approx(tone.stack_rms(single), rel=1e-12)


def test_relu_and_bias_moments():
    weights = named_kernel("laplacian").parts[0]
    linear = tone.stack_rms([stack_library.Layer(weights, 1)], model=WHITE)[0]
    # max(Y, 0) of a zero-mean Gaussian keeps half its second moment.
    relu = tone.stack_rms([stack_library.Layer(weights, 1, relu=True)], model=WHITE)[0]
    assert relu == pytest.approx(linear / math.sqrt(2), rel=1e-9)
    biased = tone.stack_rms([stack_library.Layer(weights, 1, bias=3.0)], model=WHITE)[0]
    assert biased == pytest.approx(math.hypot(linear, 3.0), rel=1e-9)
    # Far above zero a ReLU changes nothing: context-basic passes its input through.
    basic = tone.stack_rms(stack_library.context_basic(3), 3)
    identity = tone.response_rms(named_kernel("identity"))
    assert basic == pytest.approx([identity] * 8, rel=2e-3)


def test_average_channels_of_opposite_channels_cancels():
    weights = np.zeros((2, 1, 3, 3))
    weights[0, 0, 1, 1], weights[1, 0, 1, 1] = 1.0, -1.0
    layers = [stack_library.Layer(weights, 1)]
    assert tone.stack_rms(layers)[0] > 0.4
    assert tone.stack_rms(layers, average_channels=True) == [0.0]


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 2, 2)), [[np.inf]], ()])
def test_kernel_must_be_finite_2d(bad):
    with pytest.raises(ValueError):
        tone.kernel_scale(bad)


@pytest.mark.parametrize("dilation", [0, -1, 1.5, (1, 2, 3), True])
def test_dilation_must_be_positive_integers(dilation):
    with pytest.raises(ValueError, match="dilation"):
        tone.kernel_scale(named_kernel("laplacian"), dilation)


# --- starlet scales and worst-case gains ------------------------------------------------


def test_starlet_scales_on_white_noise_are_the_plane_kernels_norms():
    b3 = named_kernel("b3spline").parts[0]
    n = WHITE.size
    smooth, expected = np.ones((1, 1)), []
    for level in range(4):
        blurred = convolve2d(smooth, _dilated(b3, 2**level))
        pad = (blurred.shape[0] - smooth.shape[0]) // 2
        plane = -blurred
        plane[pad : pad + smooth.shape[0], pad : pad + smooth.shape[1]] += smooth
        expected.append(2 * WHITE.std * np.sqrt((plane**2).sum()) * n / math.sqrt(n * n - 1))
        smooth = blurred
    residual = 2 * math.hypot(WHITE.mean, WHITE.std * np.sqrt((smooth**2).sum()))
    scales = tone.starlet_scales(4, model=WHITE)
    assert scales[:4] == pytest.approx(expected, rel=1e-9)
    assert scales[4] == pytest.approx(residual, rel=1e-3)  # the size/sqrt(size^2-1) factor


def test_kernel_gain_is_the_sum_of_absolute_weights():
    assert tone.kernel_gain(named_kernel("laplacian")) == 16
    assert tone.kernel_gain(named_kernel("box")) == pytest.approx(1.0, abs=1e-12)
    assert tone.kernel_gain(named_kernel("sobel")) == pytest.approx(math.hypot(8, 8))
    assert tone.kernel_gain([[0.25, -0.5]]) == 0.75


def test_stack_gains_multiply_and_add_biases():
    laplacian = named_kernel("laplacian").parts[0]
    assert tone.stack_gains(stack_library.kernel_stack(laplacian, (1, 2, 4))) == [16, 256, 4096]
    assert tone.stack_gains(stack_library.context_basic(3)) == [1.0] * 8
    weights = np.zeros((2, 2, 1, 1))
    weights[0, :, 0, 0] = [0.5, -0.25]
    weights[1, :, 0, 0] = [0.1, 0.1]
    layers = [stack_library.Layer(weights, 1, bias=np.array([0.0, -2.0]))] * 2
    assert tone.stack_gains(layers) == pytest.approx([2.2, 2.44])  # max(0.75 g, 0.2 g + 2)


# --- the default rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mapping"),
    [
        ("laplacian", "tone"),
        ("sobel-x", "tone"),
        ("sobel", "tone"),  # never negative, but up to 11x the input
        ("scharr", "tone"),
        ("gaussian", "clip"),
        ("box", "clip"),
        ("b3spline", "clip"),
        ("identity", "clip"),
    ],
)
def test_default_mapping_of_named_kernels(name, mapping):
    kernel = named_kernel(name)
    shown = display.kernel_display(kernel, 4)
    assert shown.mapping == mapping
    assert shown.scale == pytest.approx(tone.kernel_scale(kernel, 4), rel=1e-12)


def test_default_mapping_of_custom_kernels():
    def mapping(text):
        return display.kernel_display(parse_kernel_text(text, ndim=2), 1).mapping

    assert mapping("1,2,1") == "tone"  # gain 4: would saturate under clip
    assert mapping("0.25,0.5,0.25") == "clip"  # a weighted mean
    assert mapping("0.1,0.1,0.1") == "tone"  # a third of the input: clip shows it dark
    assert mapping("0.5,-0.5") == "tone"


def test_default_mapping_of_stacks():
    laplacian = named_kernel("laplacian").parts[0]

    def mappings(layers, channels=1, **options):
        return [d.mapping for d in display.stack_displays(layers, channels, **options)]

    assert mappings(stack_library.kernel_stack(laplacian, (1, 2))) == ["tone"] * 2
    assert mappings(stack_library.random_stack((1, 2), seed=42)) == ["tone"] * 2
    assert mappings(stack_library.context_basic(3), 3) == ["clip"] * 8
    b3 = named_kernel("b3spline").parts[0]
    assert mappings(stack_library.kernel_stack(b3, (1, 2))) == ["clip"] * 2
    assert mappings(stack_library.kernel_stack(b3, (1, 2)), input_negative=True) == ["tone"] * 2
    starlet = display.starlet_displays(3)
    assert [d.mapping for d in starlet] == ["tone"] * 3 + ["clip"]
    assert [d.scale for d in starlet] == tone.starlet_scales(3)


def test_stack_scales_follow_what_the_picture_shows():
    # Four output channels: a PNG shows their mean, so the scale is the mean's.
    weights = np.zeros((4, 1, 1, 1))
    weights[:, 0, 0, 0] = [1.0, -1.0, 1.0, -1.0]
    layers = [stack_library.Layer(weights, 1)]
    (shown,) = display.stack_displays(layers, 1)
    assert shown.scale == 0.0 and shown.mapping == "tone"
    # Three output channels (RGB): every channel is shown, the RMS is over them.
    rgb = [stack_library.Layer(weights[:3], 1)]
    assert display.stack_displays(rgb, 1)[0].scale == pytest.approx(
        tone.kernel_scale([[1.0]]), rel=1e-12
    )


def test_wide_mixing_stacks_get_a_coarser_grid_and_nearly_the_same_scales():
    large = stack_library.context_large(21)  # up to 672 channels
    assert display._affordable_model(large, 21).size == display.MIN_MODEL_SIZE
    basic = stack_library.context_basic(3)
    assert display._affordable_model(basic, 3) == tone.NATURAL_IMAGES
    small = stack_library.context_large(1)
    coarse = replace(tone.NATURAL_IMAGES, size=display.MIN_MODEL_SIZE)
    assert tone.stack_scales(small, model=coarse) == pytest.approx(
        tone.stack_scales(small), rel=5e-3
    )


def test_display_values_of_the_tone_mappings():
    y = np.array([[-4.0, -1.0, 0.0, 1.0, 4.0]], np.float32)
    t = 1 - np.exp(-np.abs(y.astype(float)) * 2 / 3)  # gain 2, scale 3
    assert_allclose(display.display_values(y, "tone", 2.0, 3.0), t, rtol=1e-6)
    signed = 0.5 + np.sign(y) * t / 2
    assert_allclose(display.display_values(y, "signed-tone", 2.0, 3.0), signed, rtol=1e-6)
    colours = display.display_values(y, "diverging-tone", 2.0, 3.0)
    assert_allclose(colours, display.colormap(signed, "colorbrewer:RdBu_r"))
    assert display.display_values(y, "tone", 1.0, 0.0).tolist() == [[0.0] * 5]  # a zero kernel
    with pytest.raises(ValueError, match="tone scale"):
        display.display_values(y, "tone")
    out = y.copy()  # in place, as Rendering.save does with consume=True
    assert display.display_values(out, "signed-tone", 2.0, 3.0, out=out) is out
    assert_allclose(out, signed, rtol=1e-6)


# --- the goals, through the defaults dilcli writes (benchmarks/saturation.py: all) --------

EDGE_KERNELS = [k for k in NAMED_KERNELS.values() if any((p < 0).any() for p in k.parts)]
RANDOM_KERNELS = [
    kernel_from_array(np.random.default_rng(seed).standard_normal((3, 3)), name=f"random{seed}")
    for seed in range(3)
]


def _goals(response, shown):
    pixels = display.Rendering().pixels(response, shown, 8)
    return float(np.mean(pixels == 255)), float(np.percentile(pixels, 99.5)) / 255


@pytest.fixture(scope="module", params=["chelsea.png", "brick.png"])
def sample(request):
    return load_image(SAMPLES / request.param).data


@pytest.mark.parametrize("dilation", [1, 16])
def test_goals_for_edge_and_random_kernels(sample, dilation):
    for kernel in EDGE_KERNELS + RANDOM_KERNELS:
        response = apply_kernel(sample, kernel, dilation)
        saturated, p995 = _goals(response, display.kernel_display(kernel, dilation))
        assert saturated <= 0.02, (kernel.name, dilation, saturated)
        assert p995 >= 0.15, (kernel.name, dilation, p995)


def test_goals_for_stacks(sample):
    channels = 1 if sample.ndim == 2 else sample.shape[2]
    stacks = [
        stack_library.kernel_stack(named_kernel("laplacian").parts[0], (1, 2, 4, 8)),
        stack_library.random_stack((1, 2, 4, 8), size=(3, 3), seed=42),
        stack_library.context_basic(channels),
    ]
    for layers in stacks:
        looks = display.stack_displays(layers, channels)
        responses = stack_library.iterate_layers(sample, layers)
        for number, (y, shown) in enumerate(zip(responses, looks), 1):
            saturated, p995 = _goals(y, shown)
            assert saturated <= 0.02 and p995 >= 0.15, (number, saturated, p995)
    planes, residual = stack_library.starlet(sample, 5)
    for number, (y, shown) in enumerate(zip([*planes, residual], display.starlet_displays(5))):
        saturated, p995 = _goals(y, shown)
        assert saturated <= 0.02 and p995 >= 0.15, ("starlet", number, saturated, p995)


# --- what the command line writes ------------------------------------------------------


def _pixels(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def test_readme_random_context_example_writes_visible_pngs(tmp_path):
    # README: dilcli context photo.png -d 1,2,4,8 --init random --seed 42 -o random/
    out = tmp_path / "random"
    photo = SAMPLES / "astronaut.png"
    result = run_cli("context", photo, "-d", "1,2,4,8", "--init", "random", "--seed", "42",
                     "-o", out, "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    for number, d in enumerate((1, 2, 4, 8), 1):
        pixels = _pixels(out / f"astronaut_context_l{number}_d{d}.png")
        assert np.mean(pixels == 255) <= 0.02
        assert np.percentile(pixels, 99.5) >= 0.15 * 255, (number, np.percentile(pixels, 99.5))


def test_one_scale_for_every_image_of_a_batch(tmp_path):
    # Two images through one run: each PNG is tone(y) with the kernel's scale, never the
    # image's; --map abs keeps its old rule exactly.
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("brick.png", "camera.png"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    assert (
        run_cli("convolve", folder, "-k", "sobel", "-d", "8", "-o", tmp_path / "a", "-q").exit_code
        == 0
    )
    assert run_cli("convolve", folder, "-k", "sobel", "-d", "8", "-o", tmp_path / "b", "-q",
                   "--map", "abs").exit_code == 0  # fmt: skip
    kernel, scale = named_kernel("sobel"), tone.kernel_scale(named_kernel("sobel"), 8)
    for name in ("brick", "camera"):
        y = apply_kernel(load_image(folder / f"{name}.png").data, kernel, 8).astype(float)
        tone_pixels = np.rint(-np.expm1(-np.abs(y) / scale) * 255)
        assert np.abs(_pixels(tmp_path / "a" / f"{name}_sobel_d8.png") - tone_pixels).max() <= 1
        abs_pixels = np.rint(np.clip(np.abs(y), 0, 1) * 255)
        assert np.abs(_pixels(tmp_path / "b" / f"{name}_sobel_d8.png") - abs_pixels).max() <= 1
