"""Network receptive fields against hand formulas, published tables and brute force."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dilcli.core import network as N
from dilcli.io.networks import parse_network_file

# --- an independent reference: plain loops, no dilcli code ----------------------------


def direct_forward(x, layers):
    """1-D forward pass of ``layers`` = [(kind, k, s, d, pb, pa)], every tap one.

    conv: ``y[o] = sum_t x[o*s - pb + t*d]`` (0 outside); convT: output ``o`` gets
    ``x[i]`` for every ``i, t`` with ``i*s - pb + t*d == o`` (zero insertion + conv).
    """
    for kind, k, s, d, pb, pa in layers:
        n = len(x)
        if kind == "conv":
            size = (n + pb + pa - (k - 1) * d - 1) // s + 1
            y = [0] * max(0, size)
            for o in range(len(y)):
                for t in range(k):
                    i = o * s - pb + t * d
                    if 0 <= i < n:
                        y[o] += x[i]
        else:
            size = (n - 1) * s - pb - pa + (k - 1) * d + 1
            y = [0] * max(0, size)
            for i in range(n):
                for t in range(k):
                    o = i * s - pb + t * d
                    if 0 <= o < len(y):
                        y[o] += x[i]
        x = y
    return x


def direct_support(layers, n, out):
    """Input positions (0..n-1) whose impulse reaches output ``out``."""
    reached = []
    for i in range(n):
        x = [0] * n
        x[i] = 1
        y = direct_forward(x, layers)
        if out < len(y) and y[out]:
            reached.append(i)
    return reached


def as_spec(layers):
    parts = []
    for kind, k, s, d, pb, pa in layers:
        parts.append(f"{kind}{k}/s{s}/d{d}/p{pb}:{pa}x{pb}:{pa}")
    return ",".join(parts)


# --- golden values ----------------------------------------------------------------------


def test_context_module_table1():
    # Yu & Koltun 2015, Table 1: RF_l = RF_{l-1} + (3 - 1) * d_l, d = 1,1,2,4,8,16,1 then 1x1.
    fields, rf = [], 1
    for k, d in [(3, 1), (3, 1), (3, 2), (3, 4), (3, 8), (3, 16), (3, 1), (1, 1)]:
        rf += (k - 1) * d
        fields.append(rf)
    assert fields == [3, 5, 9, 17, 33, 65, 67, 67]
    for name in ("context-basic", "context-large"):
        net = N.preset(name)
        assert [row["rf"] for row in net.rows()] == [(f, f) for f in fields]
        assert net.field[0].centre == 0  # 'same' padding, odd kernels: centred


def test_deeplab_v2_aspp_rates():
    net = N.preset("deeplab-v2-aspp-l")
    rows = {row["path"]: row["rf"][0] for row in net.rows()}
    for branch, rate in enumerate((6, 12, 18, 24), 1):
        assert rows[f"1.{branch}.1"] == 1 + (3 - 1) * rate  # 13, 25, 37, 49
    assert net.field[0].size == 1 + 2 * 24 and net.field[0].centre == 0


def test_deeplab_v3_output_strides():
    assert N.preset("deeplab-v3").field[0].jump == 16
    assert N.preset("deeplab-v3", output_stride=8).field[0].jump == 8
    with pytest.raises(ValueError, match="8 or 16"):
        N.preset("deeplab-v3", output_stride=32)


@pytest.mark.parametrize("stacks", [1, 2, 3])
def test_wavenet_stacks(stacks):
    # 1 + (2 - 1) * (1 + 2 + ... + 512) * M = 1 + 1023 M = 1024 M - (M - 1).
    total = sum(2**i for i in range(10))
    assert total == 1023
    expected = 1 + (2 - 1) * total * stacks
    assert expected == 1024 * stacks - (stacks - 1)
    axis = N.preset("wavenet", stacks=stacks).field[0]
    assert axis.size == expected
    assert axis.centre + (axis.size - 1) / 2 == 0  # causal: the field ends at the present


@pytest.mark.parametrize(("kernel", "levels"), [(2, 8), (3, 4), (7, 8)])
def test_tcn_two_causal_convolutions_per_block(kernel, levels):
    expected = 1 + 2 * (kernel - 1) * sum(2**i for i in range(levels))
    axis = N.preset("tcn", kernel=kernel, levels=levels).field[0]
    assert axis.size == expected
    assert axis.centre + (axis.size - 1) / 2 == 0


def test_hdc_and_drn_by_hand():
    assert N.preset("hdc").field[0].size == 1 + 2 * (1 + 2 + 5) * 3
    # DRN-C-26: conv7; 2 convs at J=1; conv/s2 + 1 at J=1 -> J=2; levels 3, 4: one conv at
    # J before the stride, three after; levels 5, 6: 4 convs at d=2, 4 (J=8); 7: 2 at d=2;
    # 8: 2 at d=1.
    rf = 7 + 2 * 2 + 2 + 2 * 2 + (4 + 3 * 8) + (8 + 3 * 16)
    rf += 4 * 2 * 2 * 8 + 4 * 2 * 4 * 8 + 2 * 2 * 2 * 8 + 2 * 2 * 8
    axis = N.preset("drn-c-26").field[0]
    assert (axis.size, axis.jump, axis.centre) == (rf, 8, 0)


@pytest.mark.parametrize(
    ("name", "rf", "stride", "padding"),
    [
        # google-research/receptive_field, README.md and RECEPTIVE_FIELD_TABLE.md: the
        # TF-Slim end-points alexnet_v2/pool5, vgg_16/pool5, resnet_v1_50/block4 (224
        # input): receptive field, effective stride, effective padding, where
        # centre = -padding + (rf - 1) / 2.
        ("alexnet", 195, 32, 64),
        ("vgg16", 212, 32, 90),
        ("resnet50", 483, 32, 239),
    ],
)
def test_published_backbones(name, rf, stride, padding):
    net = N.preset(name)
    for axis in net.field:
        assert (axis.size, axis.jump, axis.padding) == (rf, stride, padding)
        assert axis.centre == -padding + Fraction(rf - 1, 2)
    assert N.verify(net).ok


def test_presets_have_provenance():
    for name, (provenance, _) in N.PRESETS.items():
        assert len(provenance) > 20
        assert N.preset(name).provenance == provenance


# --- centres and boxes against the direct implementation ----------------------------------


@pytest.mark.parametrize(
    "layers",
    [
        [("conv", 3, 1, 1, 1, 1), ("conv", 3, 1, 2, 2, 2), ("conv", 3, 1, 4, 4, 4)],
        [("conv", 3, 1, 2, 0, 4), ("conv", 2, 1, 3, 3, 0)],  # asymmetric and causal
        [("conv", 4, 2, 1, 0, 3), ("conv", 3, 1, 2, 1, 3), ("conv", 3, 3, 1, 2, 0)],
    ],
)
def test_centre_and_box_match_impulses(layers):
    net = N.parse_spec(as_spec(layers))
    axis = net.field[0]
    for out in (12, 13):  # boxes well inside the 200 inputs: no clipping
        reached = direct_support(layers, 200, out)
        assert reached[0] > 0 and reached[-1] < 199
        assert N.box(net, out, out)[:2] == (reached[0], reached[-1])
        assert Fraction(reached[0] + reached[-1], 2) == axis.centre + out * axis.jump
        assert reached[-1] - reached[0] + 1 == axis.size


def test_centre_of_asymmetric_padding_by_formula():
    # c = ((k - 1) d / 2 - p_before) j: kernel 3, dilation 2, padding 0 before -> +2.
    net = N.parse_spec("conv3/d2/p0:4")
    assert net.field[0].centre == 2
    assert N.parse_spec("conv3/d2/causal").field[0].centre == -2
    assert N.parse_spec("conv2").field[0].centre == Fraction(1, 2)  # 'same', extra right


@pytest.mark.parametrize(
    ("spec", "layers"),
    [
        ("convT4/s2/p1", [("convT", 4, 2, 1, 1, 1)]),
        ("convT3/s3/d2/p1", [("convT", 3, 3, 2, 1, 1)]),
        ("up2", [("convT", 2, 2, 1, 0, 0)]),  # nearest = convT with ones, k = s = f
        ("up3/bilinear", [("convT", 5, 3, 1, 1, 1)]),  # k = 2f - 1, p = (f - 1) / 2
        ("conv3/s2/p1,up2/bilinear", [("conv", 3, 2, 1, 1, 1), ("convT", 4, 2, 1, 1, 1)]),
        ("conv3/d2/p2,convT2/s2", [("conv", 3, 1, 2, 2, 2), ("convT", 2, 2, 1, 0, 0)]),
    ],
)
def test_fractional_jumps_against_zero_insertion(spec, layers):
    net = N.parse_spec(spec)
    axis = net.field[0]
    product = Fraction(1)
    for kind, _, s, _, _, _ in layers:
        product = product / s if kind == "convT" else product * s
    assert axis.jump == product
    for out in range(6, 12):
        reached = direct_support(layers, 40, out)
        expected = None if not reached else (reached[0], reached[-1])
        got = N.box(net, out, out)
        assert (None if got is None else got[:2]) == expected
        if reached:  # the window bound holds
            low, high = axis.window(out)
            assert low <= reached[0] and reached[-1] <= high
    assert N.verify(net).ok


def test_box_per_axis_and_outside_the_image():
    net = N.parse_spec("conv3x5/d1x2,conv3/s2")
    h, w = net.field
    assert (h.size, w.size) == (5, 11)
    assert N.box(net, 0, 0) == (-2, 2, -5, 5)
    assert N.box(net, 2, 1) == (2, 6, -3, 7)
    assert N.larger_than_input(net, (4, 20)) == (True, False)


# --- branches ------------------------------------------------------------------------------


def test_residual_concat_and_sum():
    net = N.parse_spec("[conv3,conv3]+,[conv1|conv3/d6|conv3/d12],conv1")
    assert net.field[0].size == 1 + 2 + 2 + 2 * 12
    assert N.verify(net).ok
    assert N.parse_spec("[conv3,conv3|]+") == N.parse_spec("[conv3,conv3]+")


def test_branch_misalignment_names_branches():
    with pytest.raises(
        ValueError,
        match=r"item 2 \(add\).*height.*branch 1 \(conv3/p1\) "
        r"jump 1 centre 0; branch 2 \(conv3/p0\) jump 1 centre 1",
    ):
        N.parse_spec("conv3,[conv3|conv3/p0]+")
    with pytest.raises(ValueError, match=r"branch 1 .* jump 2 .*branch 2 .* jump 1"):
        N.parse_spec("[conv3/s2|conv3]")
    with pytest.raises(ValueError, match="width"):
        N.parse_spec("[conv3x3|conv3x2]")


def test_causal_residuals_align_on_the_present():
    # x + causal(x): centres differ, right edges (the present sample) agree.
    net = N.parse_spec("[conv3/d2/causal]+")
    assert net.field[0].size == 5 and net.field[0].centre == -2
    with pytest.raises(ValueError, match="right edge"):
        N.parse_spec("[conv3/d2/causal|conv3/causal/s2]+")


# --- parsing ------------------------------------------------------------------------------


def test_spec_round_trip_and_json():
    text = "conv3,conv3/d2,pool2/s2,conv3x1/d4,up2,[conv3/d6|conv3/d12|conv3/d18]+,convT4/s2/p1"
    net = N.parse_spec(text)
    assert N.parse_spec(net.spec()) == net
    data = {
        "name": "demo",
        "layers": [
            {"type": "conv", "kernel": 3},
            {"type": "conv", "kernel": 3, "dilation": 2},
            {"type": "pool", "kernel": 2, "stride": 2},
            {"type": "conv", "kernel": [3, 1], "dilation": [4, 4]},
            {"type": "up", "factor": 2},
            {"merge": "add", "branches": [["conv3/d6"], ["conv3/d12"], ["conv3/d18"]]},
            {"type": "convT", "kernel": 4, "stride": 2, "padding": 1},
        ],
    }
    assert N.parse_json(json.dumps(data)).nodes == net.nodes
    assert N.parse_json({"layers": [{"repeat": 3, "layers": ["conv3"]}]}).field[0].size == 7


def test_network_file(tmp_path):
    path = tmp_path / "net.txt"
    path.write_text("# a residual stack\nconv3   # stem\n([conv3,conv3]+)*2\n")
    assert parse_network_file(path).field[0].size == 11
    path.write_text(json.dumps(["conv3", "conv3/d2"]))
    assert parse_network_file(path).field[0].size == 7
    path.write_bytes(b"conv3," * (N.MAX_FILE_BYTES // 6 + 1))
    with pytest.raises(ValueError, match="at most 1048576 bytes"):
        parse_network_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("conv", "kernel"),
        ("conv3/x2", "unknown option"),
        ("dense3", "unknown layer"),
        ("conv3/d0", "at least 1"),
        ("[conv3", "needs ']'"),
        ("conv3*200000", "100000 layers"),
        ("(conv3*1000)*1000", "100000 layers"),
        ("[" * 40 + "conv3" + "]" * 40, "nest"),
        ("convT3/same", "as numbers"),
        ("conv3/s3000000000", "2\\*\\*31 - 1"),
        ("", "at least one layer"),
    ],
)
def test_spec_errors(text, message):
    with pytest.raises(ValueError, match=message):
        N.parse_spec(text)


# --- units ------------------------------------------------------------------------------


def test_physical_units():
    assert N.physical(483, pixel_size="0.5um") == (Fraction(483, 2), "um")
    assert N.physical(3, pixel_size="2.5 mm") == (Fraction(15, 2), "mm")
    assert N.physical(1024, rate="16kHz") == (64, "ms")
    assert N.physical(1021, rate="250Hz") == (Fraction(1021 * 1000, 250), "ms")
    with pytest.raises(ValueError, match="unit"):
        N.physical(3, pixel_size="3 parsecs")
    with pytest.raises(ValueError, match="one of them"):
        N.physical(3)
    info = N.describe(N.preset("wavenet"), input_size=(1, 1000), rate="16kHz")
    assert info["larger"] == (True, True) and info["physical"][1] == (64, "ms")


# --- coverage and HDC ----------------------------------------------------------------------


def test_coverage_matches_receptive_and_branches():
    assert N.coverage(N.parse_spec("conv3/d2*3"))["height"] == Fraction(7, 13)
    cov = N.coverage(N.parse_spec("[conv3/d2|conv3/d3]"))
    assert cov["height"] == Fraction(5, 7)  # {-3, -2, 0, 2, 3} of 7
    assert cov["area"] == Fraction(9 + 9 - 1, 49)  # two 3x3 lattices sharing the centre


@pytest.mark.parametrize(
    ("rates", "applies", "passes", "hole_free"),
    [
        ((1, 2, 5), True, True, True),
        ((1, 3, 1), True, False, True),  # the rule is not necessary
        ((1, 2, 9), True, False, False),
        ((2, 3), False, True, False),  # first rate 2: HDC passes, holes: not applicable
    ],
)
def test_hdc_and_coverage_agree(rates, applies, passes, hole_free):
    report = N.hdc_check(N.parse_spec(",".join(f"conv3/d{r}" for r in rates)))
    assert report["applies"] == applies
    assert (report["says"][0][0] == "pass") == passes
    assert report["hole_free"] == hole_free
    if report["applies"] and passes:
        assert report["hole_free"]


# --- effective receptive field -------------------------------------------------------------


def test_erf_box_filter_closed_form():
    erf = N.effective_receptive_field(N.parse_spec("pool9/s1/avg/same"))
    assert erf.map.shape == (9, 9)
    np.testing.assert_allclose(erf.map, 1 / 81)
    # Smallest centred square with >= t of 81 equal cells: side^2 >= 81 t.
    for share in (0.2, 0.3, 0.5, 0.99):
        side = next(s for s in range(1, 10, 2) if s * s >= 81 * share)
        assert erf.ratios[share]["side"] == (side, side)
    assert erf.ratios[0.5]["side"] == (7, 7)
    np.testing.assert_allclose(erf.sigma, math.sqrt((81 - 1) / 12))


def test_erf_sigma_adds_per_layer_and_weights_are_used():
    # Uniform on {0, d, 2d} has variance 2 d^2 / 3; independent layers add.
    erf = N.effective_receptive_field(N.parse_spec("conv3,conv3/d2,conv3/d4"), "uniform")
    np.testing.assert_allclose(erf.sigma, math.sqrt(2 / 3 * (1 + 4 + 16)))
    np.testing.assert_allclose(erf.map.sum(), 1)
    one = N.effective_receptive_field(N.parse_spec("conv3x1"), [[[1], [-2], [0]]])
    np.testing.assert_allclose(one.map[:, 0], [1 / 3, 2 / 3, 0])
    seeded = N.effective_receptive_field(N.preset("context-basic"), seed=3)
    again = N.effective_receptive_field(N.preset("context-basic"), seed=3)
    np.testing.assert_array_equal(seeded.map, again.map)
    with pytest.raises(ValueError, match="one each"):
        N.effective_receptive_field(N.parse_spec("conv3"), [np.ones((3, 3))] * 2)


# --- bounds ------------------------------------------------------------------------------


def test_bounded_work_is_refused_with_the_limit():
    with pytest.raises(ValueError, match="at most 8,388,608 cells"):
        N.verify(N.preset("deeplab-v3"))
    with pytest.raises(ValueError, match="2048 x 2048"):
        N.effective_receptive_field(N.preset("wavenet", stacks=3))
    with pytest.raises(ValueError, match="10\\*\\*100"):
        N.parse_spec("conv3/s1000000000*12")


# --- properties ---------------------------------------------------------------------------

_LAYER = st.tuples(
    st.sampled_from(["conv", "conv", "conv", "convT"]),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 3),
    st.integers(0, 3),
)


@st.composite
def small_networks(draw):
    layers = draw(st.lists(_LAYER, min_size=1, max_size=4))
    parts = []
    for kind, k, s, d, pb, pa in layers:
        if kind == "convT":
            pb, pa = min(pb, (k - 1) * d), min(pa, (k - 1) * d)
        part = f"{kind}{k}/s{s}/d{d}/p{pb}:{pa}"
        if kind == "conv" and s == 1 and draw(st.booleans()):
            part = f"[conv{k}/d{d}|]+" if k % 2 else part  # odd 'same' residual: aligned
        parts.append(part)
    return ",".join(parts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_networks())
def test_verify_agrees_with_the_recurrences(spec):
    net = N.parse_spec(spec)
    report = N.verify(net)
    assert report.ok, "\n".join(report.lines())
    # The recurrences, restated: the window of output 0 holds its exact box.
    h = net.field[0]
    got = N.box(net, 0, 0)
    if got is not None:
        low, high = h.window(0)
        assert low <= got[0] and got[1] <= high
        if not net.fractional:
            assert (got[0], got[1]) == (low, high)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_hdc_pass_never_contradicts_coverage(rates):
    report = N.hdc_check(N.parse_spec(",".join(f"conv3/d{r}" for r in rates)))
    if report["applies"] and all(v[0] == "pass" for v in report["says"]):
        assert report["hole_free"]


# --- centres against an impulse through dilcli's own engine --------------------------------


@pytest.mark.parametrize(
    ("kernels", "dilations", "mode"),
    [
        ((3,) * 7 + (1,), (1, 1, 2, 4, 8, 16, 1, 1), "same"),  # the context module
        ((2, 2, 2, 2), (1, 2, 4, 8), "same"),  # even spans: the extra reach on the right
        ((2, 2, 2, 2), (1, 2, 4, 8), "causal"),  # WaveNet: the field ends at the present
        ((3, 4, 3), (2, 3, 5), "same"),
    ],
)
def test_centre_of_a_dilated_stack_matches_an_impulse_through_the_engine(kernels, dilations, mode):
    from dilcli.core.conv import dilated_correlate

    # Per layer the window of output i is x[i - o .. i - o + (k-1) d] with o = (k-1)d // 2
    # ('same', extra reach on the right) or o = (k-1)d ('causal'): the field of output i
    # starts at i - sum(o_l) and the centre sits at i - sum(o_l) + (RF - 1) / 2.
    offsets = [((k - 1) * d) // 2 if mode == "same" else (k - 1) * d
               for k, d in zip(kernels, dilations)]  # fmt: skip
    rf = 1 + sum((k - 1) * d for k, d in zip(kernels, dilations))
    centre = -sum(offsets) + Fraction(rf - 1, 2)
    padding = "/causal" if mode == "causal" else "/same"
    net = N.parse_spec(",".join(f"conv{k}/d{d}{padding}" for k, d in zip(kernels, dilations)))
    assert net.field[0].size == rf and net.field[0].centre == centre
    # The impulse at input n: output i responds exactly when n lies in i's field, so the
    # responding outputs run from n - (field end) to n - (field start) of output 0.
    n, length = 300, 600
    x = np.zeros(length)
    x[n] = 1
    for k, d in zip(kernels, dilations):
        x = dilated_correlate(x, np.ones(k), d, mode=mode, boundary="constant")
    reached = np.nonzero(x)[0]
    low, high = N.box(net, 0, 0)[:2]
    assert (reached[0], reached[-1]) == (n - high, n - low)
    assert Fraction(int(reached[0] + reached[-1]), 2) == n - centre
    if len(kernels) == 8:  # the context module: a 'start' computed without the dilation
        # (pytorch-receptive-field) would put the centre 33 - 7 = 26 pixels off.
        undilated = -sum((k - 1) // 2 for k in kernels) + Fraction(rf - 1, 2)
        assert undilated - centre == 33 - 7 == 26


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # json.loads raised RecursionError, and floats reached tuple(): both tracebacks
        ("[" * 100_000 + "]" * 100_000, "the JSON nests too deep"),
        ('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}", "the JSON nests too deep"),
        ('{"layers": [{"kernel": 3.5}]}', "kernel must be one or two integers"),
        ('{"layers": [{"kernel": 1e400}]}', "kernel must be one or two integers"),
        ('{"layers": [{"kernel": 3, "stride": 2.0}]}', "stride must be one or two integers"),
        (
            '{"layers": [{"kernel": 3, "padding": 1.5}]}',
            "padding must be same, valid, causal or numbers",
        ),
    ],
)
def test_hostile_network_files_are_value_errors_naming_the_file(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        N.parse_network_text(text, where="net.json")
    assert str(caught.value).startswith("net.json: ")
