"""``dilcli signal`` through Click: names, formats, stacks, plots, errors and exit codes."""

import re

import numpy as np
import pytest
from conftest import run_cli as run
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image
from reference import direct_correlate
from scipy.io import wavfile

from dilcli.io.signals import read_signal


def names(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture
def signal_folder(tmp_path, rng):
    """A CSV with a time column, a stereo int16 WAV and an (N, 2) .npy."""
    folder = tmp_path / "signals"
    folder.mkdir()
    rows = "".join(
        f"{i / 100:.2f},{a:.4f},{b:.4f}\n" for i, (a, b) in enumerate(rng.normal(size=(50, 2)))
    )
    (folder / "sensors.csv").write_text("time,x,y\n" + rows)
    wavfile.write(folder / "voice.wav", 16000, (rng.normal(size=(400, 2)) * 3000).astype(np.int16))
    np.save(folder / "features.npy", rng.normal(size=(60, 2)).astype(np.float32))
    return folder


def test_signal_writes_each_input_in_its_format(signal_folder, tmp_path):
    out = tmp_path / "out"
    result = run("signal", signal_folder, "-k", "difference", "-d", "1,2,4", "-o", out, "-j", "1")
    assert result.exit_code == 0, result.output
    assert names(out) == sorted(
        f"{stem}_difference_d{d}.{ext}"
        for stem, ext in (("sensors", "csv"), ("voice", "wav"), ("features", "npy"))
        for d in (1, 2, 4)
    )
    csv = read_signal(out / "sensors_difference_d2.csv")
    source = read_signal(signal_folder / "sensors.csv")
    assert csv.header == ("time", "x", "y") and csv.time == source.time
    assert_allclose(csv.data, direct_correlate(source.data, [-1, 1], 2), atol=1e-12)
    rate, samples = wavfile.read(out / "voice_difference_d4.wav")
    assert rate == 16000 and samples.dtype == np.int16 and samples.shape == (400, 2)
    features = np.load(out / "features_difference_d1.npy")
    expected = direct_correlate(np.load(signal_folder / "features.npy"), [-1, 1], 1)
    assert features.dtype == np.float32
    assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_signal_ignores_files_that_are_not_signals(signal_folder, tmp_path):
    (signal_folder / "notes.md").write_text("not a signal")
    Image.new("L", (4, 4)).save(signal_folder / "picture.png")
    out = tmp_path / "out"
    result = run("signal", signal_folder, "-k", "box", "-d", "1", "-o", out)
    assert result.exit_code == 0, result.output
    assert names(out) == ["features_box_d1.npy", "sensors_box_d1.csv", "voice_box_d1.wav"]


def test_signal_custom_kernel_modes_and_boundaries(tmp_path, rng):
    x = rng.normal(size=30)
    np.save(tmp_path / "in.npy", x)
    for mode, boundary in [
        ("valid", "wrap"),
        ("full", "mirror"),
        ("causal", "nearest"),
        ("same", None),
    ]:
        out = tmp_path / f"out-{mode}"
        args = [
            "signal",
            tmp_path / "in.npy",
            "-k",
            "0.5,-1,0.25",
            "-d",
            "3",
            "--mode",
            mode,
            "-o",
            out,
        ]
        result = run(*args, *(["--boundary", boundary] if boundary else []))
        assert result.exit_code == 0, result.output
        expected = direct_correlate(
            x, [0.5, -1, 0.25], 3, mode, boundary or ("reflect" if mode != "causal" else "constant")
        )
        (written,) = out.glob("in_custom-*_d3.npy")  # named by a digest of the weights
        assert re.fullmatch(r"in_custom-[0-9a-f]{6}_d3\.npy", written.name)
        assert_allclose(np.load(written), expected, atol=1e-12)


def test_signal_stack_prints_causal_receptive_fields(tmp_path, rng):
    np.save(tmp_path / "in.npy", rng.normal(size=2000))
    out = tmp_path / "out"
    dilations = ",".join(str(2**i) for i in range(10))
    result = run(
        "signal",
        tmp_path / "in.npy",
        "-k",
        "1,1",
        "-d",
        dilations,
        "--mode",
        "causal",
        "--stack",
        "--activation",
        "relu",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "past samples reaching y[i]" in result.output
    assert "     10       512             1024" in result.output
    kernel = re.search(r"in_(custom-[0-9a-f]{6})_stack_l1_d1\.npy", " ".join(names(out)))[1]
    assert names(out) == sorted(f"in_{kernel}_stack_l{i + 1}_d{2**i}.npy" for i in range(10))
    assert np.all(np.load(out / f"in_{kernel}_stack_l10_d512.npy") >= 0)


def test_signal_plot_for_one_input_and_for_several(signal_folder, tmp_path):
    out = tmp_path / "out"
    picture = tmp_path / "pictures" / "sensors.png"
    result = run(
        "signal",
        signal_folder / "sensors.csv",
        "-k",
        "second-difference",
        "-d",
        "1,4",
        "-o",
        out,
        "--plot",
        picture,
    )
    assert result.exit_code == 0, result.output
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width == 1400
    result = run(
        "signal",
        signal_folder,
        "-d",
        "1,4",
        "-o",
        tmp_path / "out2",
        "--plot",
        tmp_path / "all.png",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("all_*.png")) == [
        "all_features.png",
        "all_sensors.png",
        "all_voice.png",
    ]


def test_signal_batch_goes_on_past_bad_files(signal_folder, tmp_path):
    (signal_folder / "ragged.csv").write_text("a,b\n1,2\n3\n")
    (signal_folder / "words.csv").write_text("a,b\n1,2\n3,x\n")
    (signal_folder / "empty.csv").write_text("")
    (signal_folder / "short.txt").write_text("1\n2\n3\n")
    out = tmp_path / "out"
    result = run(
        "signal", signal_folder, "-k", "box", "-d", "4", "--mode", "valid", "-o", out, "-j", "1"
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    for name, reason in [
        ("ragged.csv", "ragged table: line 3 has 1 values, expected 2"),
        ("words.csv", "line 3, column 2: 'x' is not a number"),
        ("empty.csv", "empty file: no rows of values"),
        (
            "short.txt",
            "'valid' output would be empty: the dilated kernel spans 9 samples "
            "but the input has only 3",
        ),
    ]:
        assert any(
            line.startswith("error: ") and name in line and reason in line for line in lines
        ), (name, result.output)
    assert "4 input(s) failed" in result.output
    assert names(out) == ["features_box_d4.npy", "sensors_box_d4.csv", "voice_box_d4.wav"]


def test_signal_reruns_skip_finished_work(signal_folder, tmp_path):
    out = tmp_path / "out"
    assert run("signal", signal_folder, "-d", "1", "-o", out).exit_code == 0
    result = run("signal", signal_folder, "-d", "1", "-o", out)
    assert result.exit_code == 0 and "0 done, 3 skipped" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--mode", "causal", "--boundary", "reflect"],
            "mode 'causal' allows boundary constant or nearest only",
        ),
        (["--activation", "relu"], "--activation applies between the layers of --stack"),
        (["--plot", "picture.jpg"], "the picture is a PNG"),
        (["-k", "no-such-kernel"], "unknown kernel 'no-such-kernel'"),
        (["-d", "0"], "dilations must be integers from 1 to"),
    ],
)
def test_signal_usage_errors_exit_2(signal_folder, tmp_path, extra, message):
    result = run("signal", signal_folder, "-o", tmp_path / "out", *extra)
    assert result.exit_code == 2
    assert message in result.output


def test_signal_time_column_option(tmp_path):
    (tmp_path / "in.csv").write_text("v,when\n1,a\n2,b\n4,c\n")
    out = tmp_path / "out"
    result = run(
        "signal",
        tmp_path / "in.csv",
        "-k",
        "difference",
        "-d",
        "1",
        "--time-column",
        "when",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    assert (
        out / "in_difference_d1.csv"
    ).read_text() == "v,when\n1,a\n2,b\n0,c\n"  # reflect: x[3] = x[2]
    result = run("signal", tmp_path / "in.csv", "-d", "1", "-o", tmp_path / "out2")
    assert result.exit_code == 1
    assert "line 2, column 2: 'a' is not a number" in result.output


def test_signal_wav_float32_stereo_through_the_command(tmp_path, rng):
    samples = rng.uniform(-0.5, 0.5, size=(256, 2)).astype(np.float32)
    wavfile.write(tmp_path / "in.wav", 44100, samples)
    out = tmp_path / "out"
    result = run("signal", tmp_path / "in.wav", "-k", "identity", "-d", "1,2", "-o", out)
    assert result.exit_code == 0, result.output
    rate, written = wavfile.read(out / "in_identity_d2.wav")
    assert rate == 44100 and written.dtype == np.float32
    assert_array_equal(written, samples)


def test_signal_same_stem_of_different_formats_in_different_folders_keep_their_formats(
    tmp_path, rng
):
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "b").mkdir()
    np.save(tmp_path / "in" / "a" / "x.npy", rng.normal(size=10))
    (tmp_path / "in" / "b" / "x.csv").write_text("1\n2\n3\n")
    result = run("signal", tmp_path / "in", "-r", "-d", "1", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a" / "x_second-difference_d1.npy").is_file()
    assert (tmp_path / "out" / "b" / "x_second-difference_d1.csv").is_file()


def test_signal_same_stem_in_one_folder_keeps_both(tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.normal(size=10))
    (tmp_path / "x.csv").write_text("1\n2\n3\n")
    out = tmp_path / "out"
    result = run(
        "signal", tmp_path / "x.npy", tmp_path / "x.csv", "-k", "box", "-d", "1", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert names(out) == ["x_csv_box_d1.csv", "x_npy_box_d1.npy"]
