"""rf-table, rf-map and rf-suggest keep their promises at any size: exact numbers (checked
against direct set computations), answers within seconds and 500 MB, clear refusals."""

import json
import math
import random
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dilcli.core import receptive
from dilcli.core.receptive import make_stack
from dilcli.render import rfmap
from dilcli.render.tables import render_rows

PEAK_MB = 500
TIMEOUT = 300  # seconds: a hang fails, a slow or busy machine does not

# A fresh, small Python runs the command as its child and reports the child's peak
# memory. (A child of pytest itself would report at least pytest's own size: Linux
# keeps ru_maxrss across fork and exec.) With a file of arguments the child runs the
# CLI in-process: a list of 100000 dilications is past the 128 KiB limit of one argv.
WRAPPER = """
import json, resource, subprocess, sys
if sys.argv[1] == "--args-file":
    code = (
        "import json, sys\\n"
        "from dilcli.cli import main\\n"
        f"sys.argv = ['dilcli', *json.load(open({sys.argv[2]!r}))]\\n"
        "main()\\n"
    )
    command = [sys.executable, "-c", code]
else:
    command = [sys.executable, "-m", "dilcli", *sys.argv[1:]]
process = subprocess.run(command, capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 1024
report = {"code": process.returncode, "peak_mb": peak_mb}
print(json.dumps(dict(report, stdout=process.stdout, stderr=process.stderr)))
"""


def measure(*args, args_file=None):
    """``dilcli *args`` as a user runs it: (exit code, peak MB, stdout, stderr)."""
    argv = ["--args-file", str(args_file)] if args_file else [str(a) for a in args]
    process = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout)
    assert "Traceback" not in report["stderr"], report["stderr"]
    return report["code"], report["peak_mb"], report["stdout"], report["stderr"]


def usage_error(stderr):
    """The one-line message of a usage error (exit 2)."""
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("Error: "), stderr
    return lines[-1][len("Error: ") :]


# --- references: direct set computations, independent of dilcli.receptive ---------------


def reference_sets(layers):
    """The 1-D footprint after each layer, as a Python set of positions."""
    reached, jump, result = {0}, 1, []
    for kernel, dilation, stride in layers:
        step = dilation * jump
        reached = {p + t * step for p in reached for t in range(kernel)}
        result.append(reached)
        jump *= stride
    return result


def reference_2d(layers):
    """The 2-D footprint of square k x k layers, pixel by pixel (no Cartesian product)."""
    reached, jump = {(0, 0)}, 1
    for kernel, dilation, stride in layers:
        step = dilation * jump
        taps = [(a * step, b * step) for a in range(kernel) for b in range(kernel)]
        reached = {(y + a, x + b) for y, x in reached for a, b in taps}
        jump *= stride
    return reached


def reference_m2(rates):
    """HDC's M_2 by the recurrence of docs/design.md (section 7), from the last layer down."""
    value = rates[-1]
    for rate in reversed(rates[1:-1]):
        value = max(value - 2 * rate, value - 2 * (value - rate), rate)
    return value


def reference_verdict(layers):
    spatial, jump = [], 1
    for kernel, dilation, stride in layers:
        if kernel > 1:
            spatial.append((kernel, dilation * jump))
        jump *= stride
    if not spatial:
        return "pass", "no spatial layers"
    sizes = {kernel for kernel, _ in spatial}
    if len(sizes) > 1:
        return "n/a", "mixed kernel sizes"
    factor = math.gcd(*(rate for _, rate in spatial))
    if factor > 1:
        return "fail", f"common factor {factor}"
    if len(spatial) > 1 and reference_m2([rate for _, rate in spatial]) > sizes.pop():
        kernel = spatial[0][0]
        return "fail", f"M2 = {reference_m2([rate for _, rate in spatial])} > {kernel}"
    return "pass", ""


def reference_reading(layers):
    """What rf-table shows for the rule (docs/design.md, section 7): a common factor
    fails (holes); elsewhere the rule decides only for one odd size from rate 1."""
    verdict, note = reference_verdict(layers)
    if verdict == "n/a" or note.startswith("common factor") or note == "no spatial layers":
        return verdict, note
    spatial = [
        (k, d * math.prod(s for _, _, s in layers[:i]))
        for i, (k, d, _) in enumerate(layers)
        if k > 1
    ]
    if spatial[0][0] % 2 == 0:
        return "n/a", "even kernels"
    if spatial[0][1] != 1:
        return "n/a", f"first rate {spatial[0][1]}, not 1"
    return ("not met", note) if verdict == "fail" else (verdict, note)


# Dilations that make the footprint change form: gcd drops (4, 6 then odd), steps past
# the whole run (a 100 after small ones), runs that close again.
dilation = st.one_of(st.integers(1, 6), st.sampled_from([4, 6, 8, 9, 12, 30, 100]))
layer = st.tuples(st.integers(1, 4), dilation, st.sampled_from([1, 1, 1, 2, 3]))


@settings(max_examples=300, deadline=None)
@given(st.lists(layer, min_size=1, max_size=9))
def test_coverage_counts_match_direct_sets(layers):
    while len(layers) > 1 and receptive.receptive_fields(layers)[-1] > 30_000:
        layers = layers[:-1]  # keep the direct sets small
    sets = reference_sets(layers)
    fields = receptive.receptive_fields(layers)
    for ndim in (1, 2):
        rows = receptive.layer_stats(layers, ndim=ndim)
        for row, reached, field in zip(rows, sets, fields, strict=True):
            assert max(reached) + 1 == field == row["rf"]
            assert row["covered"] == len(reached) ** ndim
            assert row["coverage"] == len(reached) ** ndim / field**ndim
    assert receptive.footprint_mask(layers) == sum(1 << p for p in sets[-1])
    assert receptive.is_hole_free(layers) == (len(sets[-1]) == fields[-1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 2)), max_size=4))
def test_2d_footprint_is_the_square_of_the_1d_one(layers):
    # The 2-D footprint of full square kernels is the Cartesian product of the 1-D one.
    layers = layers or [(3, 1, 1)]
    dense = reference_2d(layers)
    field = receptive.receptive_fields(layers)[-1]
    expected = np.zeros((field, field), dtype=bool)
    expected[tuple(np.array(sorted(dense)).T)] = True
    assert np.array_equal(receptive.footprint_2d(layers), expected)
    assert receptive.layer_stats(layers)[-1]["covered"] == len(dense)
    assert receptive.coverage_fraction(layers) == Fraction(int(expected.sum()), expected.size)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 3, 3, 3, 2]), dilation, st.integers(1, 2))))
def test_hdc_reading_of_every_prefix_matches_the_recurrence(layers):
    layers = layers or [(3, 1, 1)]
    rows = receptive.layer_stats(layers)
    for end, row in enumerate(rows, 1):
        assert (row["hdc"], row["hdc_note"]) == reference_reading(layers[:end])


def test_hdc_prefixes_of_long_stacks_in_one_pass():
    rng = random.Random(3)
    rates = [rng.choice([1, 1, 1, 2, 5, 40, 41, 300]) for _ in range(400)] + [10**6, 3, 10**5]
    layers = [(3, rate, 1) for rate in rates]
    rows = receptive.layer_stats(layers)
    for end in (2, 3, 50, 399, 400, 401, 402, 403):
        assert (rows[end - 1]["hdc"], rows[end - 1]["hdc_note"]) == reference_reading(layers[:end])


def test_footprints_that_never_close_stop_at_the_work_bound_not_at_a_wrong_number():
    # 1 then 1000 x 3000: the footprint is [0, 2] + 1000 * [0, 2 (l - 1)], 3 (2l - 1)
    # positions after layer l; following it is too much work past some hundreds.
    layers = make_stack([1] + [1000] * 3000)
    rows = receptive.layer_stats(layers, ndim=1)
    known = [row for row in rows if row["covered"] is not None]
    assert 100 < len(known) < len(rows)
    assert all(row["covered"] == 3 * (2 * row["layer"] - 1) for row in known)
    assert all(row["covered"] is None for row in rows[len(known) :])
    with pytest.raises(ValueError, match="bit operations"):
        receptive.footprint_mask(layers)


def test_huge_dilations_are_exact_python_integers():
    big = [2**63 - 1, 2**63, 2**64 + 1, 3 * 2**70]
    layers = make_stack(big, kernels=3, strides=[1, 2, 1, 5])
    rows = receptive.layer_stats(layers)
    field, jump = 1, 1
    for row, (d, s) in zip(rows, zip(big, [1, 2, 1, 5], strict=True), strict=True):
        field += 2 * d * jump
        jump *= s
        assert (row["rf"], row["jump"], row["coverage"]) == (field, jump, None)
    compared = {row["design"]: row for row in receptive.compare_designs(layers)}
    plain = compared["3x3 convolutions"]
    assert plain["layers"] == -(-(field - 1) // 2)  # exact, no float on the way
    assert plain["rf"] == 1 + 2 * plain["layers"] and plain["coverage"] is None
    assert compared["one " + f"{field}x{field}" + " kernel"]["params"] == field**2
    # Same dilation throughout: the footprint is small in units of the dilation.
    assert receptive.coverage_fraction(make_stack([5] * 1000), ndim=1) == Fraction(2001, 10_001)


def test_compare_designs_counts_instead_of_building_layers():
    layers = make_stack([10**6, 10**6])  # a 4000001 field: 2000000 plain 3x3 layers
    rows = {row["design"]: row for row in receptive.compare_designs(layers, 4)}
    assert rows["3x3 convolutions"]["layers"] == 2_000_000
    assert rows["3x3 convolutions"]["params"] == 16 * 9 * 2_000_000
    assert rows["3x3 convolutions"]["coverage"] == 1.0
    pooled = rows["3x3 conv + 2x2 pool"]
    field, jump, count = 3, 1, 1
    while field < 4_000_001:
        field, jump, count = field + jump + 4 * jump, 2 * jump, count + 2
    assert (pooled["rf"], pooled["resolution"], pooled["layers"]) == (field, f"1/{jump}", count)
    assert rows["dilated stack"]["coverage"] == 25 / 4_000_001**2  # 5 x 5 pixels


def test_hole_free_schedules_of_deep_stacks_are_whole_and_fast():
    for kernels, target in (([3] * 3000, 10**50), ([2, 3, 1] * 2000, 10**80)):
        (dilations,) = receptive.hole_free_schedules(kernels, target, count=1)
        layers = make_stack(dilations, kernels=kernels)
        assert receptive.receptive_fields(layers)[-1] >= target
        spans, ordered = 0, sorted((d, k) for d, k in zip(dilations, kernels, strict=True) if k > 1)
        for d, k in ordered:  # hole free: each step at most one more than the span so far
            assert d <= spans + 1
            spans += (k - 1) * d


def test_json_rows_are_written_as_json_dumps_writes_them():
    rows = receptive.layer_stats(make_stack([1, 2, 2, 3]), 8)
    nested = [{"dilations": [1, 2], "rf": 7, "layers": rows}]
    for data in (rows, nested, []):
        assert render_rows(data, None, "json") == json.dumps(data, indent=2) + "\n"


def test_effective_field_of_separable_kernels_matches_the_dense_sum():
    layers = make_stack([1, 2, 3, 1])
    kernels = [np.multiply.outer([1.0, 2.0, 1.0], [1.0, -3.0, 2.0])] * 4
    dense = np.ones((1, 1))
    for step, weights in zip(receptive.steps(layers), kernels, strict=True):
        size = dense.shape[0] + 2 * step
        grown = np.zeros((size, size))
        for a in range(3):
            for b in range(3):
                grown[
                    a * step : a * step + dense.shape[0], b * step : b * step + dense.shape[0]
                ] += weights[a, b] * dense
        dense = grown
    np.testing.assert_allclose(receptive.effective_receptive_field(layers, kernels), dense)


# --- the commands at size -----------------------------------------------------------------


def test_rf_table_wavenet_repeated_3000_times():
    code, peak, out, _ = measure(
        "rf-table", "--preset", "wavenet", "--repeat", "3000", "--format", "csv"
    )
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 + 30_000
    last = dict(zip(lines[0].split(","), lines[-1].split(","), strict=True))
    assert (last["layer"], last["rf"], last["coverage"]) == ("30000", str(3000 * 1023 + 1), "1.0")
    assert peak < PEAK_MB


def test_rf_table_of_10000_growing_dilations():
    code, peak, out, _ = measure("rf-table", "-d", "1-10000", "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert len(rows) == 10_000
    assert rows[-1]["rf"] == str(1 + 2 * 10_000 * 10_001 // 2)
    for row in rows:  # hole free throughout; coverage is given up to MAX_FOOTPRINT
        wide = int(row["rf"]) > receptive.MAX_FOOTPRINT
        assert row["coverage"] == ("" if wide else "1.0")
    assert peak < PEAK_MB


def test_rf_table_of_100000_gridded_layers(tmp_path):
    args = tmp_path / "args.json"
    args.write_text(json.dumps(["rf-table", "-d", ",".join(["2"] * 100_000), "--format", "csv"]))
    code, peak, out, err = measure(args_file=args)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 + 100_000
    last = dict(zip(lines[0].split(","), lines[-1].split(","), strict=True))
    assert (last["rf"], last["covered"]) == ("400001", str(200_001**2))
    assert "common factor 2" in err and "warning: holes" in err
    assert peak < PEAK_MB


def test_rf_table_huge_strides_are_exact():
    code, peak, out, _ = measure(
        "rf-table", "-d", "2147483647,2147483647,1", "-s", "2147483647", "--format", "json"
    )
    assert code == 0
    rows = json.loads(out)
    big = 2147483647
    assert [row["rf"] for row in rows] == [
        1 + 2 * big,
        1 + 2 * big + 2 * big**2,
        1 + 2 * big + 2 * big**2 + 2 * big**2,
    ]
    assert [row["jump"] for row in rows] == [big, big**2, big**3]
    assert peak < PEAK_MB


def test_rf_suggest_deep_targets():
    code, peak, out, _ = measure(
        "rf-suggest", "--target", 3**150 + 1, "--max-layers", 400, "--format", "json"
    )
    assert code == 0
    results = json.loads(out)
    for result in results:
        assert len(result["dilations"]) == 151 and result["rf"] >= 3**150 + 1
        assert all(row["coverage"] in (1.0, None) for row in result["layers"])
    assert peak < PEAK_MB


def test_rf_map_of_1000_layers_draws_a_bounded_picture(tmp_path):
    dilations = ",".join(["1"] * 1000)  # a 2001 x 2001 field
    for extra in ((), ("--effective",), ("--effective", "--weights", "gaussian")):
        out = tmp_path / "map.png"
        code, peak, _, err = measure("rf-map", "-d", dilations, *extra, "-o", out)
        assert code == 0, err
        assert "receptive field 2001x2001" in err
        with Image.open(out) as image:
            assert image.width * image.height <= rfmap.MAX_PICTURE_PIXELS
            pixels = np.asarray(image.convert("RGB"))
        # Hole free: no hole colour anywhere (the legend's swatch is a border only).
        assert not np.all(pixels == rfmap.HOLE, axis=-1)[200:].any()
        assert peak < PEAK_MB


def test_rf_map_panels_spread_from_the_first_layer_to_the_last():
    assert rfmap.panel_layers(5, 16) == [0, 1, 2, 3, 4]
    chosen = rfmap.panel_layers(1000, 6)
    assert chosen[0] == 0 and chosen[-1] == 999 and len(chosen) == 6
    assert rfmap.panel_layers(1000, 1) == [999]
    picture = rfmap.coverage_picture(make_stack([1, 2, 3] * 20))
    assert picture.width * picture.height <= rfmap.MAX_PICTURE_PIXELS


# --- refusals: exit 2 and one line naming the limit ------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("rf-table", "-d", "1-100001"),
            "100001 layers: dilcli takes stacks of at most 100000 layers",
        ),
        (
            ("rf-table", "-d", ",".join(["1"] * 400), "-s", "2147483647"),
            "the jump (product of the strides) passes 10**100 input pixels at layer 11",
        ),
        (("rf-suggest", "--target", 10**100 + 1), "target must be at most 10**100"),
        (("rf-map", "-d", "1-100000", "-o", "{tmp}/x.png"), "too wide to draw (at most 2048)"),
        (
            ("rf-map", "-d", ",".join(["1"] * 1000), "--1d", "-o", "{tmp}/x.png"),
            "a diagram of 1000 layers would be",
        ),
        (
            ("rf-map", "-k", "1001", "-d", "1,1", "--1d", "-o", "{tmp}/x.png"),
            "would draw 1003002 lines (at most 200000)",
        ),
        (
            (
                "rf-map",
                "-d",
                ",".join(["1"] * 1000),
                "--effective",
                "--weights",
                "laplacian",
                "-o",
                "{tmp}/x.png",
            ),
            "multiply-adds (at most 1.1e+09)",
        ),
    ],
)
def test_refusals_name_the_limit(tmp_path, args, message):
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    code, peak, out, err = measure(*args)
    assert code == 2
    assert message in usage_error(err)
    assert out == "" and not list(tmp_path.glob("*.png"))
    assert peak < PEAK_MB


def test_library_refusals():
    with pytest.raises(ValueError, match="at most 100000 layers"):
        make_stack([1] * 100_001)
    with pytest.raises(ValueError, match="at most 100000 layers"):
        receptive.as_layers([(3, 1)] * 100_001)
    with pytest.raises(ValueError, match="repeat must be at most 10000"):
        receptive.wavenet_stack(10_001)
    with pytest.raises(
        ValueError, match=r"receptive field passes 10\*\*100 input pixels at layer 5"
    ):
        make_stack([10**99] * 6)  # 1 + 2 * 5 * 10**99 at the fifth layer
    with pytest.raises(ValueError, match="too wide for a dense 2-D footprint"):
        receptive.footprint_2d(make_stack([1] * 1100))
    with pytest.raises(ValueError, match="too wide for a dense 2-D effective"):
        receptive.effective_receptive_field(make_stack([1] * 1100))
    with pytest.raises(ValueError, match="channels must be from 1 to 10"):
        receptive.layer_stats(make_stack([1, 2]), 10**101)
