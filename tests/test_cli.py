import json

import numpy as np
import pytest
from conftest import run_cli as run
from numpy.testing import assert_allclose
from PIL import Image

from dilcli.cli import cli
from dilcli.core.conv import apply_kernel
from dilcli.core.kernels import NAMED_KERNELS, named_kernel
from dilcli.io.images import load_image


def pil(path):
    with Image.open(path) as image:
        image.load()
    return image


def test_every_command_has_help():
    import click

    context = click.Context(cli)
    names = cli.list_commands(context)
    assert {"convolve", "context", "signal", "kernels", "rf-table", "rf-map"} <= set(names)
    for name in names:
        command = cli.get_command(context, name)
        result = run(name, "--help")
        assert result.exit_code == 0, name
        assert command.get_short_help_str().strip(), name


def test_convolve_writes_one_output_per_input_and_dilation(image_folder, tmp_path):
    out = tmp_path / "out"
    result = run("convolve", image_folder, "-o", out, "-k", "laplacian", "-d", "1,2,4,8", "-j", "1")
    assert result.exit_code == 0, result.output
    stems = ["deep", "gray", "rgb", "rgba"]
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == sorted(f"{s}_laplacian_d{d}.png" for s in stems for d in (1, 2, 4, 8))
    assert "4 done, 0 skipped, 0 failed" in result.output
    for stem in stems:
        source = pil(image_folder / f"{stem}.png")
        output = pil(out / f"{stem}_laplacian_d4.png")
        assert output.size == source.size
    assert pil(out / "rgba_laplacian_d1.png").mode == "RGBA"  # alpha carried
    assert pil(out / "gray_laplacian_d1.png").mode == "L"
    assert pil(out / "deep_laplacian_d1.png").mode.startswith("I")  # 16 bits in, 16 out


def test_convolve_npy_output_is_the_exact_response(image_folder, tmp_path):
    out = tmp_path / "out"
    result = run(
        "convolve",
        image_folder / "rgb.png",
        "-o",
        out,
        "-k",
        "sobel",
        "-d",
        "3",
        "--format",
        "npy",
        "--boundary",
        "wrap",
    )
    assert result.exit_code == 0, result.output
    saved = np.load(out / "rgb_sobel_d3.npy")
    want = apply_kernel(
        load_image(image_folder / "rgb.png").data, named_kernel("sobel"), 3, boundary="wrap"
    )
    assert saved.dtype == np.float32 and saved.shape == (24, 18, 3)
    assert_allclose(saved, want)


def test_convolve_png_is_tone_of_response_for_edge_kernels(image_folder, tmp_path):
    from dilcli.render.tone import kernel_scale

    out = tmp_path / "out"
    assert run("convolve", image_folder / "gray.png", "-o", out, "-d", "2").exit_code == 0
    assert run("convolve", image_folder / "gray.png", "-o", tmp_path / "abs", "-d", "2",
               "--map", "abs").exit_code == 0  # fmt: skip
    kernel = named_kernel("laplacian")
    response = apply_kernel(load_image(image_folder / "gray.png").data, kernel, 2)
    scale = kernel_scale(kernel.parts[0], 2)
    want = np.rint((1 - np.exp(-np.abs(response.astype(float)) / scale)) * 255)
    assert np.abs(np.asarray(pil(out / "gray_laplacian_d2.png"), float) - want).max() <= 1
    want = np.rint(np.clip(np.abs(response), 0, 1) * 255)  # --map abs keeps its old rule
    assert (
        np.abs(np.asarray(pil(tmp_path / "abs" / "gray_laplacian_d2.png"), float) - want).max() <= 1
    )


def test_convolve_mode_valid_and_full_sizes(image_folder, tmp_path):
    for mode, size in (("valid", (30 - 8, 20 - 8)), ("full", (30 + 8, 20 + 8))):
        out = tmp_path / mode
        assert (
            run(
                "convolve", image_folder / "gray.png", "-o", out, "-d", "4", "--mode", mode
            ).exit_code
            == 0
        )
        assert pil(out / "gray_laplacian_d4.png").size == size


def test_bad_file_fails_alone_with_one_line_and_exit_1(image_folder, tmp_path):
    (image_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "out"
    result = run("convolve", image_folder, "-o", out, "-d", "1", "-j", "1")
    assert result.exit_code == 1
    assert "error: " in result.output and "broken.png" in result.output
    assert "4 done, 0 skipped, 1 failed" in result.output
    assert (out / "gray_laplacian_d1.png").is_file()


def test_missing_input_is_named(tmp_path):
    result = run("convolve", tmp_path / "nope.png", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "nope.png: no such file or folder" in result.output


def test_valid_output_that_would_be_empty_is_a_clear_error(image_folder, tmp_path):
    result = run(
        "convolve", image_folder / "gray.png", "-o", tmp_path / "o", "-d", "16", "--mode", "valid"
    )
    assert result.exit_code == 1
    assert "'valid' output would be empty: the dilated kernel spans 33 samples" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "0"], "dilations must be integers from 1 to 2147483647, got 0"),
        (["-d", "1,x"], "'x' is not an integer"),
        (["-k", "1,2;3"], "different lengths"),
        (["-k", "edges"], "unknown kernel 'edges'"),
    ],
)
def test_usage_errors_exit_2(image_folder, tmp_path, args, message):
    result = run("convolve", image_folder, "-o", tmp_path / "o", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_output_folder_equal_to_input_folder_is_refused(image_folder):
    before = sorted(p.name for p in image_folder.iterdir())
    result = run("convolve", image_folder, "-o", image_folder)
    assert result.exit_code == 2 and "is the input folder" in result.output
    assert sorted(p.name for p in image_folder.iterdir()) == before


def test_custom_kernel_from_file_names_outputs(image_folder, tmp_path):
    (tmp_path / "ridge.txt").write_text("0 -1 0\n0 2 0\n0 -1 0\n")
    out = tmp_path / "out"
    assert (
        run(
            "convolve",
            image_folder / "gray.png",
            "-o",
            out,
            "-k",
            tmp_path / "ridge.txt",
            "-d",
            "2",
        ).exit_code
        == 0
    )
    assert (out / "gray_ridge_d2.png").is_file()


def test_montage_shows_input_and_every_dilation(image_folder, tmp_path):
    out = tmp_path / "out"
    assert (
        run("convolve", image_folder / "rgb.png", "-o", out, "-d", "1,2,3", "--montage").exit_code
        == 0
    )
    montage = pil(out / "rgb_laplacian_montage.png")
    assert montage.width > 4 * 18 and montage.mode == "RGB"


def test_rerun_skips_and_parameter_change_refuses_until_overwrite(image_folder, tmp_path):
    out = tmp_path / "out"
    args = ["convolve", image_folder, "-o", out, "-d", "1", "-j", "1"]
    assert "4 done" in run(*args).output
    before = (out / "gray_laplacian_d1.png").read_bytes()
    assert "0 done, 4 skipped" in run(*args).output
    refused = run(*args, "--gain", "2")
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert (out / "gray_laplacian_d1.png").read_bytes() == before  # nothing touched
    assert "4 done" in run(*args, "--gain", "2", "--overwrite").output
    assert "0 done, 4 skipped" in run(*args, "--gain", "2").output


def test_kernels_lists_every_named_kernel():
    result = run("kernels", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == list(NAMED_KERNELS)
    laplacian = next(r for r in rows if r["name"] == "laplacian")
    assert laplacian["weights"] == [[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]]
    table = run("kernels").output
    assert all(name in table for name in NAMED_KERNELS)


@pytest.mark.parametrize("fmt", ["npy", "tiff"])
def test_montage_with_float_outputs(image_folder, tmp_path, fmt):
    out = tmp_path / "out"
    result = run(
        "convolve", image_folder / "rgb.png", "-o", out, "-d", "1,2", "--format", fmt, "--montage"
    )
    assert result.exit_code == 0, result.output
    assert (out / "rgb_laplacian_montage.png").is_file()


def test_stretch_honours_gain(image_folder, tmp_path):
    def mean_of(gain):
        out = tmp_path / f"g{gain}"
        args = ("convolve", image_folder / "gray.png", "-o", out, "-d", "2", "--map", "stretch")
        assert run(*args, "--gain", gain).exit_code == 0
        return np.asarray(pil(out / "gray_laplacian_d2.png"), float).mean()

    assert mean_of("0.25") < 0.5 * mean_of("1")


def test_an_output_folder_that_cannot_be_made_is_a_usage_error(image_folder, tmp_path):
    result = run("convolve", image_folder / "gray.png", "-o", image_folder / "gray.png" / "sub")
    assert result.exit_code == 2
    assert "cannot create" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello", "is not a .npy array"), (None, "no such kernel file")],
)
def test_bad_kernel_files_are_named(image_folder, tmp_path, content, message):
    path = tmp_path / "k.npy"
    if content is not None:
        path.write_bytes(content)
    result = run("convolve", image_folder / "gray.png", "-o", tmp_path / "o", "-k", path)
    assert result.exit_code == 2
    assert message in result.output and "k.npy" in result.output


def test_an_empty_range_of_dilations_is_a_usage_error(image_folder, tmp_path):
    result = run("convolve", image_folder, "-o", tmp_path / "o", "-d", "4-1")
    assert result.exit_code == 2 and "the range '4-1' is empty" in result.output
