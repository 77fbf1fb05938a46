"""Receptive fields, coverage and HDC: the paper, docs/design.md (5-7), brute force."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.signal import convolve2d

from dilcli.core import receptive
from dilcli.core.conv import dilated_correlate
from dilcli.core.receptive import Layer, make_stack


def brute_footprint_2d(layers):
    """Input pixels reaching one output: convolve indicator arrays, layer by layer.

    Independent of dilcli.receptive: each layer is a k x k array of ones with
    ``d * J - 1`` zeros between taps (J = product of earlier strides), and the
    footprint of the stack is where the full convolution of them is non-zero.
    """
    reach, jump = np.ones((1, 1)), 1
    for k, d, s in layers:
        step = d * jump
        taps = np.zeros(((k - 1) * step + 1,) * 2)
        taps[::step, ::step] = 1
        reach = convolve2d(reach, taps) > 0.5
        jump *= s
    return reach


# --- receptive fields -----------------------------------------------------------------


def test_receptive_fields_table1_context_module():
    layers, _ = receptive.context_module()
    assert receptive.receptive_fields(layers) == [3, 5, 9, 17, 33, 65, 67, 67]
    assert [x.kernel for x in layers] == [3] * 7 + [1]


def test_receptive_fields_powers_of_two():
    assert receptive.receptive_fields(make_stack([1, 2, 4, 8])) == [3, 7, 15, 31]
    fields = receptive.receptive_fields(make_stack([2**i for i in range(10)]))
    assert fields == [2 ** (i + 2) - 1 for i in range(10)]


def test_receptive_fields_with_strides():
    assert receptive.receptive_fields(make_stack([1, 1], strides=[2, 1])) == [3, 7]
    assert receptive.jumps(make_stack([1, 1, 1], strides=[2, 2, 1])) == [2, 4, 4]


def test_receptive_fields_accepts_tuples_and_numpy_integers():
    assert receptive.receptive_fields([(3, 2), (np.int64(3), np.int32(4), 1)]) == [5, 13]


def test_causal_receptive_fields_wavenet():
    assert receptive.causal_receptive_fields(receptive.wavenet_stack())[-1] == 1024
    assert receptive.causal_receptive_fields(receptive.wavenet_stack(3))[-1] == 3 * 1023 + 1


@pytest.mark.parametrize(
    "args, match",
    [((0,), "kernel"), ((3, 0), "dilation"), ((3, 1, -1), "stride"), ((3.0,), "kernel")],
)
def test_layer_rejects_bad_values(args, match):
    with pytest.raises(ValueError, match=match):
        Layer(*args)


def test_make_stack_broadcasts_and_checks_lengths():
    assert make_stack([1, 2], kernels=[3, 1]) == [Layer(3, 1), Layer(1, 2)]
    with pytest.raises(ValueError, match="2 kernels for 3 dilations"):
        make_stack([1, 2, 3], kernels=[3, 3])
    with pytest.raises(ValueError, match="at least one layer"):
        make_stack([])


# --- footprint and coverage -----------------------------------------------------------


def test_coverage_gridded_2_2_2_is_49_of_169():
    layers = make_stack([2, 2, 2])
    assert receptive.coverage_fraction(layers) == Fraction(49, 169)
    assert receptive.coverage(layers) == 49 / 169
    assert brute_footprint_2d([(3, 2, 1)] * 3).sum() == 49


def test_coverage_1_2_9_is_0_7056():
    layers = make_stack([1, 2, 9])
    assert receptive.coverage(layers) == pytest.approx(0.7056, abs=1e-12)
    assert receptive.coverage_fraction(layers) == Fraction(441, 625)
    assert receptive.coverage(layers, ndim=1) == pytest.approx(0.84)


def test_coverage_of_hole_free_stacks_is_one():
    for dilations in ([1, 1, 2, 4, 8, 16, 1], [1, 2, 5], [1, 2, 4, 8], [1, 3, 9]):
        assert receptive.coverage(make_stack(dilations)) == 1.0
        assert receptive.is_hole_free(make_stack(dilations))
    assert not receptive.is_hole_free(make_stack([2, 4, 8]))


@pytest.mark.parametrize(
    "layers",
    [
        [(3, 2, 1)] * 3,
        [(3, 1, 1), (3, 2, 1), (3, 9, 1)],
        [(3, 2, 1), (3, 4, 1), (3, 8, 1)],
        [(3, 1, 2), (3, 2, 1)],
        [(2, 1, 1), (2, 3, 1), (5, 2, 1)],
        [(3, 1, 2), (3, 1, 2), (3, 3, 1), (1, 1, 1)],
    ],
)
def test_footprint_2d_matches_brute_force(layers):
    assert np.array_equal(receptive.footprint_2d(layers), brute_footprint_2d(layers))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 2)),
        min_size=1,
        max_size=4,
    )
)
def test_footprint_2d_matches_brute_force_for_random_stacks(layers):
    expected = brute_footprint_2d(layers)
    assert np.array_equal(receptive.footprint_2d(layers), expected)
    assert receptive.coverage(layers) == expected.mean()
    assert receptive.is_hole_free(layers) == bool(expected.all())


@pytest.mark.parametrize("mode", ["same", "causal"])
@pytest.mark.parametrize("dilations", [[2, 2, 2], [1, 2, 5], [3, 1]])
def test_footprint_and_output_position_match_dilated_correlate(mode, dilations):
    # Apply the stack (kernels of ones) to an impulse at each input position and see
    # whether it moves output c: the reached positions, relative to c, must be the
    # footprint placed with the output at output_positions()[-1].
    kernel = 2 if mode == "causal" else 3
    layers = make_stack(dilations, kernels=kernel)
    field = receptive.receptive_fields(layers)[-1]
    position = receptive.output_positions(layers, causal=mode == "causal")[-1]
    size = 3 * field
    c = field + field // 2
    reached = []
    for j in range(size):
        signal = np.zeros(size)
        signal[j] = 1.0
        for d in dilations:
            signal = dilated_correlate(signal, np.ones(kernel), d, mode=mode, boundary="constant")
        reached.append(signal[c] != 0)
    expected = [False] * size
    for offset, hit in enumerate(receptive.footprint_1d(layers)):
        expected[c - position + offset] = hit
    assert reached == expected


def test_footprint_too_wide_is_refused_but_table_still_counts():
    layers = make_stack([10**9, 10**9])
    with pytest.raises(ValueError, match="too wide"):
        receptive.footprint_masks(layers)
    rows = receptive.layer_stats(layers)
    assert rows[-1]["rf"] == 4 * 10**9 + 1
    assert rows[-1]["coverage"] is None


# --- Hybrid Dilated Convolution -------------------------------------------------------


def test_hdc_context_dilations_pass_with_m2_equal_1():
    layers = make_stack([1, 1, 2, 4, 8, 16])
    assert receptive.hdc_values(layers)[1] == 1
    assert receptive.hdc_verdict(layers) == ("pass", "")


def test_hdc_2_4_8_fails_with_m2_equal_4():
    layers = make_stack([2, 4, 8])
    assert receptive.hdc_values(layers) == [2, 4, 8]
    verdict, note = receptive.hdc_verdict(layers)
    assert verdict == "fail"


def test_hdc_1_2_5_passes():
    layers = make_stack([1, 2, 5])
    assert receptive.hdc_values(layers)[1] == 2
    assert receptive.hdc_verdict(layers)[0] == "pass"


def test_hdc_m2_above_kernel_fails_even_without_common_factor():
    layers = make_stack([1, 2, 9])  # M_2 = 5 > 3, and 1,2,9 share no factor
    assert receptive.hdc_values(layers)[1] == 5
    assert receptive.hdc_verdict(layers) == ("fail", "M2 = 5 > 3")


def test_hdc_2_2_2_has_m2_2_but_fails_on_the_common_factor():
    layers = make_stack([2, 2, 2])
    assert receptive.hdc_values(layers)[1] == 2
    assert receptive.hdc_verdict(layers) == ("fail", "common factor 2")


def test_hdc_skips_1x1_layers_and_mixed_sizes_are_not_judged():
    values = receptive.hdc_values(make_stack([1, 2, 1], kernels=[3, 3, 1]))
    assert values[2] is None
    assert receptive.hdc_verdict(make_stack([1, 2], kernels=[3, 5]))[0] == "n/a"


# --- the table ------------------------------------------------------------------------


def test_layer_stats_columns_and_values():
    rows = receptive.layer_stats(make_stack([1, 2, 9]))
    assert [r["rf"] for r in rows] == [3, 7, 25]
    assert [r["span"] for r in rows] == [3, 5, 19]
    assert [r["growth"] for r in rows] == [2, 4, 18]
    assert [r["covered"] for r in rows] == [9, 49, 441]
    assert rows[-1]["coverage"] == 441 / 625
    assert [r["params"] for r in rows] == [9, 9, 9]
    # M2 = 5 > 3: the rule is not met, which is no verdict on holes (coverage is).
    assert [r["hdc"] for r in rows] == ["pass", "pass", "not met"]
    required = {"layer", "kernel", "dilation", "stride", "span", "jump", "rf", "growth"}
    required |= {"coverage", "params", "hdc_m", "hdc"}
    assert required <= set(rows[0])


def test_layer_stats_params_with_channels():
    rows = receptive.layer_stats(make_stack([1, 2]), 16)
    assert [r["params"] for r in rows] == [9 * 256, 9 * 256]
    assert rows[-1]["total_params"] == 2 * 9 * 256
    rows = receptive.layer_stats(make_stack([1, 2]), [(3, 8), (8, 2)])
    assert [r["params"] for r in rows] == [9 * 24, 9 * 16]
    assert receptive.layer_stats(make_stack([1], kernels=2), 4, ndim=1)[0]["params"] == 2 * 16
    with pytest.raises(ValueError, match="channels"):
        receptive.layer_stats(make_stack([1, 2]), [(3, 8)])


def test_layer_stats_context_large_channels():
    layers, pairs = receptive.context_module(large=True, channels=21)
    assert [b for _, b in pairs] == [42, 42, 84, 168, 336, 672, 672, 21]
    rows = receptive.layer_stats(layers, pairs)
    assert rows[0]["params"] == 9 * 21 * 42
    assert rows[-1]["params"] == 1 * 672 * 21
    assert rows[-1]["total_params"] == sum(
        x.kernel**2 * a * b for x, (a, b) in zip(layers, pairs, strict=True)
    )


def test_compare_designs_for_2_2_2():
    rows = {r["design"]: r for r in receptive.compare_designs(make_stack([2, 2, 2]))}
    assert rows["3x3 convolutions"]["layers"] == 6
    assert rows["3x3 convolutions"]["params"] == 54
    assert rows["one 13x13 kernel"]["params"] == 169
    assert rows["dilated stack"]["params"] == 27
    assert rows["dilated stack"]["coverage"] == 49 / 169
    pooled = rows["3x3 conv + 2x2 pool"]
    assert pooled["rf"] >= 13
    assert pooled["resolution"] != "1/1"
    assert all(r["rf"] >= 13 for r in rows.values())


def test_share_text_never_rounds_to_full_or_empty():
    assert receptive.share_text(49, 169) == "29.0%"
    assert receptive.share_text(9999, 10000) == ">99.9%"
    assert receptive.share_text(1, 10000) == "<0.1%"
    assert receptive.share_text(5, 5) == "100%"


# --- hole-free schedules ----------------------------------------------------------------


def brute_footprint_1d(kernel, dilations):
    reach = np.ones(1)
    for d in dilations:
        taps = np.zeros((kernel - 1) * d + 1)
        taps[::d] = 1
        reach = np.convolve(reach, taps) > 0.5
    return reach


def brute_best_field(kernel, depth, target):
    """Smallest hole-free field >= target over all dilation multisets (order is moot)."""
    best = None
    limit = (target - 1) // (kernel - 1) + 1
    for dilations in itertools.combinations_with_replacement(range(1, limit + 1), depth):
        reach = brute_footprint_1d(kernel, dilations)
        if len(reach) >= target and reach.all():
            best = len(reach) if best is None else min(best, len(reach))
    return best


@pytest.mark.parametrize("target, kernel", [(13, 3), (20, 3), (25, 3), (15, 2), (40, 4)])
def test_suggest_schedules_fewest_layers_and_smallest_field(target, kernel):
    depth, schedules = receptive.suggest_schedules(target, kernel)
    assert kernel ** (depth - 1) < target  # no hole-free stack of depth-1 layers can
    assert schedules
    fields = []
    for dilations in schedules:
        layers = make_stack(dilations, kernels=kernel)
        assert len(dilations) == depth
        assert receptive.is_hole_free(layers)
        fields.append(receptive.receptive_fields(layers)[-1])
        assert fields[-1] >= target
    assert fields[0] == brute_best_field(kernel, depth, target)


def test_suggest_schedules_wavenet_and_limits():
    assert receptive.suggest_schedules(1024, 2, count=1) == (10, [tuple(2**i for i in range(10))])
    with pytest.raises(ValueError, match="at most 81"):
        receptive.suggest_schedules(129, 3, max_layers=4)
    with pytest.raises(ValueError, match="kernel"):
        receptive.suggest_schedules(10, 1)


def test_hole_free_schedules_keep_kernels_and_strides():
    found = receptive.hole_free_schedules([3, 3, 3, 3, 3, 3, 3, 1], 67)
    for dilations in found:
        layers = make_stack(dilations, kernels=[3] * 7 + [1])
        assert receptive.is_hole_free(layers)
        assert receptive.receptive_fields(layers)[-1] == 67
    for dilations in receptive.hole_free_schedules([3, 3, 3], 20, strides=[2, 1, 1]):
        layers = make_stack(dilations, kernels=3, strides=[2, 1, 1])
        assert receptive.is_hole_free(layers)
        assert receptive.receptive_fields(layers)[-1] >= 20
    assert receptive.hole_free_schedules([3, 3, 3], 29) == []  # 3**3 = 27 < 29


def test_hole_free_schedules_out_of_effort_still_answers():
    (dilations,) = receptive.hole_free_schedules([3] * 16, 33, effort=3)
    layers = make_stack(dilations)
    assert receptive.is_hole_free(layers)
    assert receptive.receptive_fields(layers)[-1] >= 33


# --- effective receptive field ----------------------------------------------------------


def test_effective_receptive_field_uniform_sums_to_one_on_the_footprint():
    layers = make_stack([2, 2, 2])
    erf = receptive.effective_receptive_field(layers)
    assert erf.shape == (13, 13)
    assert_allclose(erf.sum(), 1.0)
    assert np.array_equal(erf > 0, receptive.footprint_2d(layers))
    assert erf[6, 6] == erf.max()


def test_effective_receptive_field_of_one_layer_is_its_dilated_kernel():
    weights = np.arange(9.0).reshape(3, 3)
    erf = receptive.effective_receptive_field([(3, 2)], [weights])
    expected = np.zeros((5, 5))
    expected[::2, ::2] = weights
    assert_allclose(erf, expected)


def test_effective_receptive_field_is_the_linear_stacks_weights(rng):
    # A 'valid' stack's first output is sum_u ERF[u] x[u]: check against dilcli.conv.
    dilations = [1, 2, 3]
    kernels = [rng.normal(size=(3, 3)) for _ in dilations]
    erf = receptive.effective_receptive_field(make_stack(dilations), kernels)
    x = rng.normal(size=(erf.shape[0] + 4, erf.shape[0] + 5))
    y = x
    for weights, d in zip(kernels, dilations, strict=True):
        y = dilated_correlate(y, weights, d, mode="valid")
    assert_allclose(y[0, 0], (erf * x[: erf.shape[0], : erf.shape[1]]).sum())
    assert_allclose(y[2, 3], (erf * x[2 : 2 + erf.shape[0], 3 : 3 + erf.shape[1]]).sum())


def test_effective_receptive_field_1d_with_strides_and_absolute():
    layers = make_stack([1, 1], kernels=[2, 2], strides=[2, 1])
    erf = receptive.effective_receptive_field(layers, ndim=1)
    assert_allclose(erf, [0.25, 0.25, 0.25, 0.25])
    signed = receptive.effective_receptive_field([(2, 1)], [[1.0, -1.0]], ndim=1)
    assert_allclose(signed, [1.0, -1.0])
    magnitude = receptive.effective_receptive_field([(2, 1)], [[1.0, -1.0]], ndim=1, absolute=True)
    assert_allclose(magnitude, [1.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        receptive.effective_receptive_field([(3, 1)], [np.ones((2, 2))])


def test_receptive_module_imports_no_numpy():
    import subprocess
    import sys

    code = (
        "import sys, dilcli.receptive as r; r.layer_stats(r.make_stack([1, 2, 4]));"
        "print(sorted(m for m in ('numpy', 'scipy', 'PIL') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
