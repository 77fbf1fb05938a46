"""rf-table and rf-map on whole networks, as a user runs them; figures by hand."""

import csv
import io
import json
from fractions import Fraction

import numpy as np
import pytest
from conftest import run_cli as run


def network_json(*args):
    result = run("rf-table", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def error_of(*args, **kwargs):
    """The one error line of a command that must fail (exit 2 or 1, no traceback)."""
    result = run(*args, **kwargs)
    assert result.exit_code in (1, 2), result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- golden figures, the formula written out --------------------------------------------


@pytest.mark.parametrize(
    ("preset", "rf", "jump", "padding"),
    [
        # google-research/receptive_field (TF-Slim alexnet_v2/pool5, vgg_16/pool5,
        # resnet_v1_50/block4): RF, effective stride, effective padding.
        ("alexnet", 195, 32, 64),
        ("vgg16", 212, 32, 90),
        ("resnet50", 483, 32, 239),
    ],
)
def test_published_backbones_in_json(preset, rf, jump, padding):
    data, _ = network_json("--preset", preset)
    assert data["rf"] == {"height": rf, "width": rf}
    assert data["jump"] == {"height": jump, "width": jump}
    assert data["padding"] == {"height": padding, "width": padding}
    # centre = -padding + (rf - 1) / 2; the box of output (0, 0) is centre -+ (rf - 1) / 2.
    centre = -padding + (rf - 1) / 2
    assert data["centre"]["height"] == centre
    low, high = -padding, rf - 1 - padding
    assert data["box"] == {"top": low, "bottom": high, "left": low, "right": high}
    assert data["provenance"].startswith("TF-Slim")


def test_deeplab_aspp_l_field_and_holes():
    data, _ = network_json("--preset", "deeplab-v2-aspp-l")
    # The widest branch: 3x3 at rate 24, RF = 1 + (3 - 1) * 24 = 49.
    assert data["rf"]["height"] == 1 + (3 - 1) * 24 == 49
    # Per axis each branch reaches {-r, 0, r}: {0, +-6, +-12, +-18, +-24}, 9 of 49.
    assert data["coverage"]["height"] == pytest.approx(9 / 49)
    # In 2-D: four 3x3 lattices sharing the centre: 4 * 8 + 1 = 33 of 49 * 49.
    assert data["coverage"]["area"] == pytest.approx(33 / 49**2)
    assert data["hdc"]["hole_free"] is False
    branches = [row for row in data["layers"] if row["item"].endswith(".1")]
    assert [row["rf"]["height"] for row in branches] == [1 + 2 * r for r in (6, 12, 18, 24)]


def test_wavenet_n_by_m_in_milliseconds():
    data, _ = network_json("--preset", "wavenet:layers=10,stacks=3", "--rate", "16000")
    # Kernel 2 at 1, 2, ..., 512, three stacks: 1 + (2 - 1) * 1023 * 3 = 3070 samples.
    rf = 1 + (2 - 1) * sum(2**i for i in range(10)) * 3
    assert data["rf"]["height"] == rf == 3070
    assert data["physical"]["height"] == {"value": rf * 1000 / 16000, "unit": "ms"}
    # Causal: the box ends at the present sample.
    assert (data["box"]["top"], data["box"]["bottom"]) == (-(rf - 1), 0)


def test_wavenet_repeat_is_the_same_network():
    rows, _ = network_json("--preset", "wavenet", "--repeat", "2")  # the layer table
    repeat, _ = network_json("--preset", "wavenet", "--repeat", "2", "--at", "0")
    named, _ = network_json("--preset", "wavenet:stacks=2")
    assert rows[-1]["rf"] == repeat["rf"]["height"] == named["rf"]["width"] == 2047
    one, _ = network_json("--preset", "wavenet", "--verify")
    assert one["verification"]["ok"] and one["rf"]["height"] == 1024


@pytest.mark.parametrize(("levels", "kernel"), [(4, 3), (8, 2)])
def test_tcn_two_causal_convolutions_per_block(levels, kernel):
    data, _ = network_json("--preset", f"tcn:levels={levels},kernel={kernel}")
    # Bai et al.: two causal convolutions per block, so the field grows by 2 (k - 1) d.
    # One convolution per block (keras-tcn's mistaken reading) would give 1 + (k-1) sum d.
    rf = 1 + 2 * (kernel - 1) * sum(2**i for i in range(levels))
    assert data["rf"]["height"] == rf
    assert data["rf"]["height"] != 1 + (kernel - 1) * sum(2**i for i in range(levels))


def test_deeplab_v3_output_strides_by_alias():
    for stride in (16, 8):
        data, _ = network_json("--preset", f"deeplab-v3-os{stride}")
        assert data["jump"]["height"] == stride


# --- every flag ---------------------------------------------------------------------------


def test_at_gives_the_exact_box_of_a_residual_network():
    spec = "conv3,[conv3/d2,conv3/d2]+,pool2/s2"
    data, _ = network_json("--spec", spec, "--at", "3,5")
    # conv3: 3; two 3x3 at d2: 3 + 4 + 4 = 11; pool2/s2 (jump 1 -> 2): 11 + 1 = 12.
    # Centre of output 0 is 1/2 (the pool's window is 0..1); output i at 1/2 + 2 i.
    rf, jump = 12, 2
    assert data["rf"]["width"] == rf and data["jump"]["width"] == jump
    for (low, high), i in ((("top", "bottom"), 3), (("left", "right"), 5)):
        centre = Fraction(1, 2) + jump * i
        assert data["box"][low] == centre - Fraction(rf - 1, 2)
        assert data["box"][high] == centre + Fraction(rf - 1, 2)


def test_input_size_warns_when_the_field_is_larger():
    data, stderr = network_json("--preset", "resnet50", "--input-size", "224")
    assert data["larger_than_input"] == {"height": True, "width": True}
    assert "483x483" in stderr and "larger than the input (224x224)" in stderr
    data, stderr = network_json("--preset", "alexnet", "--input-size", "224,300")
    assert data["larger_than_input"] == {"height": False, "width": False}
    assert data["input_size"] == [224, 300] and stderr == ""


def test_pixel_size_in_micrometres():
    data, _ = network_json("--preset", "resnet50", "--pixel-size", "0.5um")
    assert data["physical"]["width"] == {"value": 483 * 0.5, "unit": "um"}


def test_verify_prints_a_verified_line_and_json():
    result = run("rf-table", "--preset", "context-basic", "--verify")
    assert result.exit_code == 0
    assert result.stderr.startswith("verified: an impulse through the linear skeleton")
    data, _ = network_json("--preset", "drn-c-26", "--verify")
    checks = data["verification"]["checks"]
    assert data["verification"]["ok"] and all(check["ok"] for check in checks)
    assert {"box of output 0", "size", "centre of output 0", "jump"} <= {c["what"] for c in checks}


def test_verify_too_large_is_one_clear_error():
    line = error_of("rf-table", "--preset", "deeplab-v3-os8", "--verify")
    assert "cannot verify" in line and "cells" in line


def test_stack_options_with_a_network_flag_become_a_network():
    data, _ = network_json("-d", "1,2,4", "--at", "2,2")
    # 3x3 'same' at 1, 2, 4: RF 1 + 2 (1 + 2 + 4) = 15, centred on the output.
    assert data["rf"]["height"] == 15
    assert data["box"] == {"top": 2 - 7, "bottom": 2 + 7, "left": 2 - 7, "right": 2 + 7}


def test_per_axis_columns_when_height_and_width_differ():
    result = run("rf-table", "--spec", "conv3x1,conv1x3/d2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].split()[:4] == ["item", "layer", "RF_h", "RF_w"]
    figures = next(i for i, line in enumerate(lines) if line.startswith("figure"))
    assert lines[figures].split() == ["figure", "height", "width"]
    field = next(line for line in lines[figures:] if line.startswith("receptive field"))
    assert field.split()[-2:] == ["3", "5"]  # 1 + 2 * 1 rows, 1 + 2 * 2 columns
    # Same axes: one figure each, and the RF as 3x3.
    result = run("rf-table", "--spec", "conv3")
    assert "item  layer" in result.stdout and "figure" in result.stdout
    assert "RF_h" not in result.stdout and " 3x3" in result.stdout


def test_csv_and_markdown_carry_the_figures():
    result = run("rf-table", "--preset", "hdc", "--verify", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["figure", "height", "width"]
    figures = {row["figure"]: row for row in rows}
    assert figures["rf"]["height"] == str(1 + 2 * (1 + 2 + 5) * 3)
    assert figures["verification.ok"]["height"] == "True"
    assert any(name.startswith("layer 1 conv3") for name in figures)
    result = run("rf-table", "--preset", "hdc", "--format", "markdown")
    assert result.stdout.count("| item | layer |") == 1
    assert "| receptive field | 49x49 |" in result.stdout


def test_network_file_json_and_text(tmp_path):
    path = tmp_path / "net.json"
    layers = [
        "conv3",
        {"type": "pool", "kernel": 2, "stride": 2},
        {"merge": "add", "branches": [["conv3"], []]},
    ]
    path.write_text(json.dumps({"name": "mine", "layers": layers}))
    data, _ = network_json("--network", path)
    # 3, then the 2x2 pool: 3 + 1 = 4 (jump 2), then 3x3 at jump 2: 4 + 2 * 2 = 8.
    assert data["name"] == "mine" and data["rf"]["height"] == 8
    text = tmp_path / "net.txt"
    text.write_text("conv3   # the stem\npool2/s2\n[conv3]+\n")
    assert network_json("--network", text)[0]["rf"] == data["rf"]


def test_effective_field_from_an_npz(tmp_path):
    weights = tmp_path / "w.npz"
    np.savez(weights, weight_0=np.ones((3, 3)), weight_1=np.ones((4, 2, 3, 3)))
    data, _ = network_json("--spec", "conv3,conv3", "--effective", "--weights", weights)
    erf = data["effective"]
    assert erf["weights"] == "w.npz"
    # Two 3x3 box filters: the 5x5 ERF is the outer square of [1,2,3,2,1] / 9 per axis:
    # variance 2 * (2/3) = 4/3 per axis, sigma = sqrt(4/3).
    assert erf["gaussian_fit"]["sigma"]["height"] == pytest.approx((4 / 3) ** 0.5)
    # Centred squares hold (3/9)^2 = 11 % (side 1), (7/9)^2 = 60 % (side 3), all (5).
    sides = {
        share: found["side"]["height"] for share, found in erf["high_contribution_area"].items()
    }
    assert sides == {"20%": 3, "30%": 3, "50%": 3, "99%": 5}
    assert erf["high_contribution_area"]["20%"]["area_ratio"] == pytest.approx(9 / 25)


def test_effective_in_the_table():
    result = run("rf-table", "--preset", "hdc", "--effective", "--weights", "uniform")
    assert result.exit_code == 0
    assert "ERF: square holding 99%" in result.stdout and "Gaussian fit" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--spec", "conv3,[conv3/d2|conv3/s2]+"),
            "branch 1 (conv3/d2/p2) jump 1 centre 0; branch 2 (conv3/s2/p1) jump 2",
        ),  # fmt: skip
        (("--spec", "conv3/q"), "unknown option 'q'"),
        (("--network", "missing.json"), "No such file"),
        (("--preset", "resnet99"), "choose one of"),
        (("--preset", "wavenet:stacks=x"), "key=value"),
        (("--preset", "alexnet", "--pixel-size", "3 parsecs"), "unit"),
        (("--preset", "alexnet", "--pixel-size", "1e999m", "--format", "json"), "1e30"),
        (("--preset", "wavenet", "--rate", "1e-999Hz"), "1e-30"),
        (("--preset", "alexnet", "--pixel-size", "1um", "--rate", "1kHz"), "not both"),
        (("--preset", "alexnet", "--compare"), "for stacks"),
        (("--preset", "alexnet", "--repeat", "2"), "--repeat is for --preset wavenet"),
        (("--spec", "conv3", "--preset", "alexnet"), "not several"),
        (("--spec", "conv3", "--at", "1,2,3"), "N or H,W"),
        (("--spec", "conv3", "--input-size", "0"), "at least 1"),
        (("--spec", "conv3", "--weights", "uniform"), "--weights is for --effective"),
    ],
)
def test_rf_table_network_errors(tmp_path, args, message):
    line = error_of("rf-table", *args, cwd=tmp_path)
    assert message in line


def test_fields_too_wide_to_follow_keep_the_exact_figures():
    # 1 + 2 * 2e9 * 1000: the field is exact; its footprint is too wide to follow.
    data, _ = network_json("--spec", "conv3/d2000000000*1000")
    assert data["rf"]["height"] == 1 + 2 * 2_000_000_000 * 1000
    assert data["coverage"] == {"height": None, "width": None, "area": None}
    assert data["hdc"]["conclusion"].startswith("coverage not computed: receptive field")
    line = error_of("rf-table", "--spec", "up2*3,conv3/d100000000*40")
    assert "cannot follow output (0, 0) back to its box" in line


def test_branch_error_names_the_layers_in_one_line():
    line = error_of("rf-table", "--spec", "conv3,[conv3/d2|pool2/s2]")
    assert "item 2 (concat)" in line and "pool2/s2/p0" in line


# --- HDC and coverage agree ---------------------------------------------------------------


def test_wavenet_repeat_3_reports_no_hdc_failure_beside_full_coverage():
    result = run("rf-table", "--preset", "wavenet", "--repeat", "3", "--format", "json")
    rows = json.loads(result.stdout)
    assert all(row["coverage"] == 1.0 for row in rows)
    assert {row["hdc"] for row in rows} == {"n/a"}  # even kernels: the rule decides nothing
    assert "fail" not in result.stderr
    assert "does not apply (even kernels); coverage decides: 100%, no holes" in result.stderr


def test_hdc_not_met_is_no_verdict_on_holes():
    # 1, 3, 1: M2 = 5 > 3, yet every pixel of the 11x11 field is reached.
    result = run("rf-table", "-d", "1,3,1", "--format", "json")
    last = json.loads(result.stdout)[-1]
    assert (last["hdc"], last["coverage"]) == ("not met", 1.0)
    assert "a sufficient condition only, so coverage decides: 100%, no holes" in result.stderr
    data, _ = network_json("--spec", "conv3,conv3/d3,conv3")
    assert data["hdc"]["hole_free"] and "says nothing about holes" in data["hdc"]["conclusion"]


# --- rf-map --------------------------------------------------------------------------------


def test_rf_map_network_picture(tmp_path):
    from PIL import Image

    out = tmp_path / "aspp.png"
    result = run("rf-map", "--preset", "deeplab-v2-aspp-l", "--effective", "-o", out)
    assert result.exit_code == 0, result.output
    assert "receptive field 49x49" in result.stderr
    with Image.open(out) as image:
        assert image.width > 2 * 49 * 6  # two panels of 6-pixel cells
    weights = tmp_path / "w.npz"
    np.savez(weights, weight_0=np.ones((3, 3)), weight_1=np.ones((3, 3)))
    out = tmp_path / "res.png"
    args = ("--spec", "conv3,[conv3]+", "--at", "4,4", "--effective", "--weights", weights)
    assert run("rf-map", *args, "-o", out).exit_code == 0
    assert out.is_file()


def test_rf_map_errors(tmp_path):
    out = str(tmp_path / "x.png")
    assert "give -d" in error_of("rf-map", "-o", out)
    assert "for -d stacks" in error_of("rf-map", "--preset", "alexnet", "--1d", "-o", out)
    assert "go with -d" in error_of("rf-map", "--preset", "alexnet", "-k", "3", "-o", out)
    assert run("rf-map", "-d", "1,2", "-k", "3", "--at", "1,1", "-o", out).exit_code == 0
    assert "for networks" in error_of("rf-map", "-d", "1,2", "--weights", "a.npz", "-o", out)
    assert "reads no input" not in error_of("rf-map", "--spec", "conv3,[conv3|conv3/s2]", "-o", out)


def test_rich_tables_show_brackets_as_text(monkeypatch, capsys):
    # On a terminal, rich would read '[conv3|pool2]+' as markup and drop it.
    import sys

    from dilcli.render import tables

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    tables.print_rows([{"layer": "[conv3|pool2]+"}], ("layer",), "table", title="[a|b]")
    out = capsys.readouterr().out
    assert "[conv3|pool2]+" in out and "[a|b]" in out


def test_a_disagreeing_check_fails_the_command(monkeypatch):
    from dilcli.core import network

    bad = network.VerifyReport([network.Check("height", "size", 3, 4)])
    monkeypatch.setattr(network, "verify", lambda net, at: bad)
    line = error_of("rf-table", "--spec", "conv3", "--verify")
    assert line == "Error: verification failed: BAD height size expected 3, measured 4"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        # 2**1000000 as text took seconds, then Python's int-to-text limit leaked out
        ("wavenet:layers=1000000", "preset wavenet: layers must be from 1 to 31"),
        ("tcn:levels=99999", "preset tcn: levels must be from 1 to 31"),
        ("wavenet:layers=0", "preset wavenet: layers must be from 1 to 31"),
        # the builder's name and Python's TypeError leaked out
        ("wavenet:bogus=1", "preset wavenet takes layers, stacks; got 'bogus'"),
        ("context-basic:x=1", "preset context-basic takes no options; got 'x'"),
        ("wavenet:layers=1-2", "preset wavenet: layers is one whole number, got 1-2"),
        # the spec we built is not the user's: no 'character 171 of the spec'
        ("wavenet:stacks=0", "preset wavenet: '*' needs a repeat count from 1 to 9999999"),
    ],
)
def test_bad_preset_options_are_one_line_naming_the_option(option, message):
    line = error_of("rf-table", "--preset", option)
    assert message in line
    assert "character" not in line and "()" not in line


def test_a_tuple_option_takes_one_number():
    report, _ = network_json("--preset", "hdc:rates=3,repeat=2")
    assert report["spec"] == "conv3/d3/p3,conv3/d3/p3"
    assert report["rf"]["height"] == 1 + 2 * (3 - 1) * 3  # two 3x3 layers at rate 3


@pytest.mark.parametrize(
    ("option", "value"), [("--at", "3,4"), ("--at", "-1,5"), ("--input-size", "10,12")]
)
def test_one_d_presets_take_one_number_per_position(option, value):
    # --preset wavenet --at 3,4 printed 'output (3)' beside a second column for 4
    line = error_of("rf-table", "--preset", "wavenet", option, value)
    assert line == f"Error: Invalid value for '{option}': '{value}': a 1-D network takes one number"
    report, _ = network_json("--preset", "wavenet", "--at", "3,3")  # the same number twice
    assert report["at"] == [3, 3]
