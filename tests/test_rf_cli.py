"""dilcli rf-table and rf-suggest, as a user runs them."""

import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import run_cli as run


def table_json(*args):
    result = run("rf-table", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


# --- rf-table -----------------------------------------------------------------------


def test_rf_table_context_dilations_json():
    rows, stderr = table_json("-k", "3", "-d", "1,1,2,4,8,16,1")
    assert [r["rf"] for r in rows] == [3, 5, 9, 17, 33, 65, 67]
    assert all(r["coverage"] == 1.0 for r in rows)
    assert [r["layer"] for r in rows] == list(range(1, 8))
    assert {"layer", "kernel", "dilation", "stride", "jump", "rf", "coverage", "params"} <= set(
        rows[0]
    )
    assert stderr == ""


def test_rf_table_preset_context_basic_is_table1():
    rows, _ = table_json("--preset", "context-basic")
    assert [r["rf"] for r in rows] == [3, 5, 9, 17, 33, 65, 67, 67]
    assert [r["kernel"] for r in rows] == [3] * 7 + [1]
    assert [r["dilation"] for r in rows] == [1, 1, 2, 4, 8, 16, 1, 1]
    assert rows[0]["params"] == 9 * 21 * 21  # C = 21 by default


def test_rf_table_preset_context_large_channels():
    rows, _ = table_json("--preset", "context-large", "--channels", "10")
    # c_out: 2C, 2C, 4C, 8C, 16C, 32C, 32C, C; c_in of layer 1 is C.
    assert rows[0]["params"] == 9 * 10 * 20
    assert rows[5]["params"] == 9 * 160 * 320  # layer 6: 16C -> 32C
    assert rows[7]["params"] == 1 * 320 * 10
    assert rows[-1]["total_params"] == sum(r["params"] for r in rows)


def test_rf_table_presets_seed_and_wavenet():
    rows, _ = table_json("--preset", "seed")
    assert [r["rf"] for r in rows] == [3, 7, 15, 31]
    rows, _ = table_json("--preset", "wavenet", "--repeat", "2")
    assert len(rows) == 20
    assert rows[9]["rf"] == 1024
    assert rows[-1]["rf"] == 2047
    assert rows[0]["params"] == 2  # 1-D: k weights per channel pair


def test_rf_table_strides():
    rows, _ = table_json("-d", "1,1", "-s", "2,1")
    assert [r["rf"] for r in rows] == [3, 7]
    assert [r["jump"] for r in rows] == [2, 2]


def test_rf_table_per_layer_kernels():
    rows, _ = table_json("-k", "3,3,1", "-d", "1,2,1")
    assert [r["rf"] for r in rows] == [3, 7, 7]
    assert rows[-1]["hdc_m"] is None


def test_rf_table_csv_round_trips_to_the_json_rows():
    rows, _ = table_json("-d", "1,2,9", "--channels", "4")
    result = run("rf-table", "-d", "1,2,9", "--channels", "4", "--format", "csv")
    assert result.exit_code == 0
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(parsed) == len(rows)
    for row, text in zip(rows, parsed, strict=True):
        assert set(text) == set(row)
        for key, value in row.items():
            if value is None:
                assert text[key] == ""
            elif isinstance(value, float):
                assert float(text[key]) == value
            else:
                assert text[key] == str(value)
    assert float(parsed[-1]["coverage"]) == pytest.approx(0.7056)


def test_rf_table_markdown_and_plain_table():
    result = run("rf-table", "-d", "1,2,4,8", "--format", "markdown")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| layer"))
    assert "coverage" in header and "params" in header
    assert "| 4 | 3x3 | 8 |" in result.stdout
    assert "31x31" in result.stdout
    result = run("rf-table", "-d", "1,2,4,8")  # not a terminal: plain aligned columns
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "Receptive field: 3x3 at dilations 1,2,4,8"
    header = ["layer", "kernel", "dilation", "span", "RF", "growth", "coverage", "params"]
    assert lines[1].split() == [*header, "M_i", "HDC"]
    assert lines[-1].split() == ["4", "3x3", "8", "17", "31x31", "16", "100%", "9", "8", "pass"]


def test_rf_table_warns_about_holes_with_a_hole_free_schedule():
    result = run("rf-table", "-d", "2,2,2")
    assert result.exit_code == 0
    assert "49 of 169" in result.stderr
    assert "29.0%" in result.stderr
    assert "-d 1,2,3" in result.stderr  # hole-free, 3 layers, 13x13
    assert "holes" not in result.stdout


def test_rf_table_reports_the_hdc_rule_on_stderr():
    rows, stderr = table_json("-d", "2,4,8")
    assert rows[-1]["hdc"] == "fail" and rows[-1]["hdc_m"] == 8
    assert [r["hdc_m"] for r in rows] == [2, 4, 8]
    assert "HDC rule (Wang et al. 2018): fail, common factor 2" in stderr
    rows, stderr = table_json("-d", "1,2,5")
    assert rows[-1]["hdc"] == "pass" and "HDC" not in stderr


def test_rf_table_holes_beyond_what_the_depth_allows():
    result = run("rf-table", "-d", "2,4,8", "--format", "json")
    assert result.exit_code == 0
    json.loads(result.stdout)  # warnings stay off stdout
    assert "26.8%" in result.stderr
    assert "at most 27x27" in result.stderr
    assert "4 layers do" in result.stderr


def test_rf_table_compare():
    result = run("rf-table", "-d", "2,2,2", "--compare", "--format", "json")
    assert result.exit_code == 0
    rows = {r["design"]: r for r in json.loads(result.stdout)}
    assert rows["dilated stack"]["params"] == 27
    assert rows["3x3 convolutions"]["layers"] == 6
    assert rows["one 13x13 kernel"]["params"] == 169
    assert rows["3x3 conv + 2x2 pool"]["resolution"] == "1/4"
    result = run("rf-table", "--preset", "context-basic", "--compare", "--channels", "8")
    assert result.exit_code == 0
    assert "dilated stack" in result.stdout and "67x67" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "give the dilations"),
        (("-d", "1,2", "--preset", "seed"), "not both"),
        (("-d", "0,2"), "from 1 to"),
        (("-d", "1,x"), "not an integer"),
        (("-d", "1,2,3", "-k", "3,3"), "2 kernels for 3 dilations"),
        (("-d", "1,2", "--repeat", "2"), "--repeat is for --preset wavenet"),
        (("--preset", "seed", "-k", "5"), "drop -k/-s"),
        (("--preset", "nope"), "nope"),
        (("-d", "1,2", "--channels", "0"), "0"),
    ],
)
def test_rf_table_usage_errors(args, message):
    result = run("rf-table", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_rf_table_huge_dilations_answer_without_coverage():
    rows, _ = table_json("-d", "1000000000,1000000000")
    assert rows[-1]["rf"] == 4000000001
    assert rows[-1]["coverage"] is None


def test_rf_table_imports_no_numpy_scipy_or_pillow():
    code = (
        "import sys\n"
        "from dilcli.cli import cli\n"
        "for fmt in ('table', 'json', 'csv', 'markdown'):\n"
        "    cli(['rf-table', '-d', '2,2,2', '--format', fmt], standalone_mode=False)\n"
        "cli(['rf-suggest', '--target', '129'], standalone_mode=False)\n"
        "print(sorted(m for m in ('numpy', 'scipy', 'PIL') if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"


# --- rf-suggest -----------------------------------------------------------------------


def test_rf_suggest_json():
    result = run("rf-suggest", "--target", "129", "-k", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    schedules = json.loads(result.stdout)
    assert 1 <= len(schedules) <= 3
    for schedule in schedules:
        assert len(schedule["dilations"]) == 5  # 3**4 = 81 < 129 <= 3**5
        assert schedule["rf"] >= 129
        assert schedule["layers"][-1]["rf"] == schedule["rf"]
        assert all(row["coverage"] == 1.0 for row in schedule["layers"])
    assert "5 layers are the fewest" in result.stderr


def test_rf_suggest_table_csv_and_markdown():
    result = run("rf-suggest", "--target", "13")
    assert result.exit_code == 0
    assert "-d 1,2,3" in result.stdout and "13x13" in result.stdout
    result = run("rf-suggest", "--target", "13", "--format", "csv", "--count", "2")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["schedule"] for r in rows] == ["1"] * 3 + ["2"] * 3
    assert [r["dilation"] for r in rows[:3]] == ["1", "2", "3"]
    result = run("rf-suggest", "--target", "1024", "-k", "2", "--1d", "--format", "markdown")
    assert "| 10 | 2 | 512 |" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--target", "129", "--max-layers", "4"), "at most 81"),
        (("--target", "1"), "1"),
        (("--target", "10", "-k", "1"), "1"),
        ((), "--target"),
    ],
)
def test_rf_suggest_usage_errors(args, message):
    result = run("rf-suggest", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_rf_commands_have_help():
    for name in ("rf-table", "rf-map", "rf-suggest"):
        result = run(name, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout
