import numpy as np
import pytest
from conftest import run_cli as run
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image

from dilcli.core.conv import dilated_correlate
from dilcli.core.kernels import LAPLACIAN
from dilcli.core.stacks import forward, stack_from_arrays
from dilcli.io.images import load_image


def pil(path):
    with Image.open(path) as image:
        image.load()
    return image


def outputs(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def save_weights(path, rng, channels, dilations, size=3):
    arrays = {"dilations": np.array(dilations)}
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        arrays[f"weight_{i}"] = rng.normal(size=(c_out, c_in, size, size)).astype(np.float32)
        arrays[f"bias_{i}"] = rng.normal(scale=0.1, size=c_out).astype(np.float32)
    np.savez(path, **arrays)
    return arrays


def test_starlet_writes_planes_and_residual_that_sum_to_the_input(image_folder, tmp_path):
    out = tmp_path / "out"
    result = run(
        "context",
        image_folder / "rgb.png",
        "--preset",
        "starlet",
        "--levels",
        "3",
        "-o",
        out,
        "--format",
        "npy",
    )
    assert result.exit_code == 0, result.output
    assert outputs(out) == [
        "rgb_starlet_c3.npy",
        "rgb_starlet_w1.npy",
        "rgb_starlet_w2.npy",
        "rgb_starlet_w3.npy",
    ]
    total = sum(np.load(out / f"rgb_starlet_w{j}.npy") for j in (1, 2, 3)) + np.load(
        out / "rgb_starlet_c3.npy"
    )
    assert_allclose(total, load_image(image_folder / "rgb.png").data, atol=1e-5)
    assert "1 done, 0 skipped, 0 failed" in result.output


def test_starlet_default_levels_and_montage(image_folder, tmp_path):
    out = tmp_path / "out"
    result = run("context", image_folder, "--preset", "starlet", "-o", out, "--montage", "-j", "1")
    assert result.exit_code == 0, result.output
    stems = ["deep", "gray", "rgb", "rgba"]
    names = [f"{s}_starlet_w{j}.png" for s in stems for j in range(1, 6)]
    names += [f"{s}_starlet_c5.png" for s in stems] + [f"{s}_starlet_montage.png" for s in stems]
    assert outputs(out) == sorted(names)
    assert "4 done, 0 skipped, 0 failed" in result.output
    montage = pil(out / "rgb_starlet_montage.png")
    assert montage.width > 7 * 18  # input, five planes and the residual side by side
    assert pil(out / "rgba_starlet_w1.png").mode == "RGBA"  # alpha carried
    assert pil(out / "deep_starlet_w1.png").mode.startswith("I")  # 16 bits kept


def test_kernel_stack_names_one_output_per_layer_and_prints_receptive_fields(
    image_folder, tmp_path
):
    out = tmp_path / "out"
    result = run(
        "context",
        image_folder / "gray.png",
        "-d",
        "1,2,4,8",
        "-k",
        "laplacian",
        "-o",
        out,
        "--format",
        "npy",
    )
    assert result.exit_code == 0, result.output
    assert outputs(out) == [f"gray_context_l{i}_d{d}.npy" for i, d in enumerate([1, 2, 4, 8], 1)]
    for rf in ("3x3", "7x7", "15x15", "31x31"):
        assert rf in result.output
    want = load_image(image_folder / "gray.png").data
    for i, d in enumerate([1, 2, 4, 8], 1):
        want = dilated_correlate(want, LAPLACIAN, d)
        assert_array_equal(np.load(out / f"gray_context_l{i}_d{d}.npy"), want)


def test_context_presets_print_table_1_receptive_fields(image_folder, tmp_path):
    result = run(
        "context", image_folder / "gray.png", "--preset", "context-basic", "-o", tmp_path / "out"
    )
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if line.startswith("  ")][1:]
    assert [line[-1] for line in lines] == [
        "3x3",
        "5x5",
        "9x9",
        "17x17",
        "33x33",
        "65x65",
        "67x67",
        "67x67",
    ]
    assert [line[2] for line in lines] == ["1", "1", "2", "4", "8", "16", "1", "1"]


def test_context_basic_passes_feature_maps_through_and_final_only(tmp_path, rng):
    features = rng.random((10, 12, 5)).astype(np.float32)
    np.save(tmp_path / "features.npy", features)
    out = tmp_path / "out"
    result = run(
        "context",
        tmp_path / "features.npy",
        "--preset",
        "context-basic",
        "-o",
        out,
        "--format",
        "npy",
        "--final-only",
    )
    assert result.exit_code == 0, result.output
    assert outputs(out) == ["features_context_l8_d1.npy"]
    assert_array_equal(np.load(out / "features_context_l8_d1.npy"), features)


def test_gray_image_keeps_its_shape_and_tiff_is_exact_float32(image_folder, tmp_path):
    import tifffile

    out = tmp_path / "out"
    assert (
        run(
            "context",
            image_folder / "gray.png",
            "--preset",
            "context-basic",
            "-o",
            out,
            "--format",
            "tiff",
        ).exit_code
        == 0
    )
    saved = tifffile.imread(out / "gray_context_l8_d1.tif")
    assert saved.dtype == np.float32
    assert_array_equal(saved, load_image(image_folder / "gray.png").data)


def test_context_large_png_of_many_channels_and_seed(image_folder, tmp_path):
    out = tmp_path / "out"
    result = run(
        "context",
        image_folder / "rgb.png",
        "--preset",
        "context-large",
        "--seed",
        "3",
        "-o",
        out,
        "--format",
        "npy",
    )
    assert result.exit_code == 0, result.output
    assert np.load(out / "rgb_context_l6_d16.npy").shape == (24, 18, 96)
    final = np.load(out / "rgb_context_l8_d1.npy")
    assert_allclose(final, load_image(image_folder / "rgb.png").data, atol=0.02)  # identity + noise
    png = tmp_path / "png"
    assert (
        run("context", image_folder / "rgb.png", "--preset", "context-large", "-o", png).exit_code
        == 0
    )
    assert pil(png / "rgb_context_l6_d16.png").mode == "L"  # 96 channels shown by their mean


@pytest.mark.parametrize("boundary", ["constant", "reflect"])
def test_weights_file_matches_the_stack(tmp_path, rng, boundary):
    features = rng.random((14, 11, 3)).astype(np.float32)
    np.save(tmp_path / "features.npy", features)
    arrays = save_weights(tmp_path / "model.npz", rng, [3, 6, 4, 2], [1, 2, 4])
    out = tmp_path / "out"
    result = run(
        "context",
        tmp_path / "features.npy",
        "--weights",
        tmp_path / "model.npz",
        "--boundary",
        boundary,
        "-o",
        out,
        "--format",
        "npy",
    )
    assert result.exit_code == 0, result.output
    assert outputs(out) == [
        "features_context_l1_d1.npy",
        "features_context_l2_d2.npy",
        "features_context_l3_d4.npy",
    ]
    assert "model.npz: 3 layers" in result.output
    want = forward(features, stack_from_arrays(arrays), boundary=boundary)
    for name, expected in zip(outputs(out), want, strict=True):
        assert_allclose(np.load(out / name), expected, rtol=1e-6, atol=1e-6)


def test_no_truncate_removes_the_relus(tmp_path, rng):
    features = rng.random((9, 9, 2)).astype(np.float32)
    np.save(tmp_path / "f.npy", features)
    arrays = save_weights(tmp_path / "m.npz", rng, [2, 3, 1], [1, 2])
    out = tmp_path / "out"
    result = run(
        "context",
        tmp_path / "f.npy",
        "--weights",
        tmp_path / "m.npz",
        "--no-truncate",
        "-o",
        out,
        "--format",
        "npy",
        "--final-only",
    )
    assert result.exit_code == 0, result.output
    want = forward(features, stack_from_arrays(arrays, relu=False))[-1]
    assert_allclose(np.load(out / "f_context_l2_d2.npy"), want, rtol=1e-6, atol=1e-6)


def test_channel_mismatch_fails_that_file_only_with_one_line(image_folder, tmp_path, rng):
    save_weights(tmp_path / "model.npz", rng, [1, 2, 1], [1, 2])  # for one-channel inputs
    out = tmp_path / "out"
    result = run(
        "context",
        image_folder / "gray.png",
        image_folder / "rgb.png",
        "--weights",
        tmp_path / "model.npz",
        "-o",
        out,
        "-j",
        "1",
    )
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "rgb.png: input has 3 channels, but the weights expect 1" in errors[0]
    assert "model.npz" in errors[0]
    assert "1 done, 0 skipped, 1 failed" in result.output
    assert outputs(out) == ["gray_context_l1_d1.png", "gray_context_l2_d2.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "choose one stack"),
        (["--preset", "starlet", "-d", "1,2"], "got --preset and -d/--dilations"),
        (["-k", "laplacian"], "-k/--kernel and --init go with -d/--dilations"),
        (["--preset", "context-basic", "--levels", "3"], "--levels goes with --preset starlet"),
        (["--preset", "starlet", "--mode", "valid"], "starlet needs mode 'same'"),
        (["--preset", "starlet", "--no-truncate"], "starlet is linear"),
        (["-d", "1,2", "-k", "sobel"], "sobel is a gradient pair"),
        (["-d", "1,0"], "dilations must be integers from 1 to"),
        (["--weights", "missing.npz"], "does not exist"),
    ],
)
def test_usage_errors_exit_2(image_folder, tmp_path, args, message):
    result = run("context", image_folder / "gray.png", "-o", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"weight_0": np.ones((1, 1, 3, 3))}, "need an array 'dilations'"),
        ({"dilations": np.array([1, 2]), "weight_0": np.ones((1, 1, 3, 3))}, "lack 'weight_1'"),
    ],
)
def test_bad_weights_file_is_a_usage_error_naming_it(image_folder, tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    result = run(
        "context",
        image_folder / "gray.png",
        "--weights",
        tmp_path / "bad.npz",
        "-o",
        tmp_path / "out",
    )
    assert result.exit_code == 2
    assert "bad.npz" in result.output and message in result.output


def test_weights_that_are_not_an_npz_archive(image_folder, tmp_path):
    np.save(tmp_path / "plain.npy", np.ones((3, 3)))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name in ("plain.npy", "junk.npz"):
        result = run(
            "context",
            image_folder / "gray.png",
            "--weights",
            tmp_path / name,
            "-o",
            tmp_path / "out",
        )
        assert result.exit_code == 2
        assert name in result.output


def test_random_init_is_reproducible_and_seeded(image_folder, tmp_path):
    args = [
        "context",
        image_folder / "gray.png",
        "-d",
        "1,2",
        "--init",
        "random",
        "--format",
        "npy",
    ]
    assert run(*args, "-o", tmp_path / "a").exit_code == 0
    assert run(*args, "-o", tmp_path / "b").exit_code == 0
    assert run(*args, "--seed", "1", "-o", tmp_path / "c").exit_code == 0
    a, b, c = (np.load(tmp_path / x / "gray_context_l2_d2.npy") for x in "abc")
    assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_rerun_skips_and_a_changed_weights_file_needs_overwrite(image_folder, tmp_path, rng):
    save_weights(tmp_path / "m.npz", rng, [1, 2, 1], [1, 2])
    args = [
        "context",
        image_folder / "gray.png",
        "--weights",
        tmp_path / "m.npz",
        "-o",
        tmp_path / "out",
    ]
    assert "1 done" in run(*args).output
    assert "0 done, 1 skipped" in run(*args).output
    save_weights(tmp_path / "m.npz", rng, [1, 2, 1], [1, 2])
    refused = run(*args)
    assert refused.exit_code == 2 and "another run" in refused.output
    assert "1 done" in run(*args, "--overwrite").output


def test_pytorch_export_snippet_round_trips(tmp_path, rng):
    torch = pytest.importorskip("torch")
    layers, channels, dilations = [], 4, [1, 1, 2, 4, 8, 16, 1, 1]
    for i, d in enumerate(dilations):
        size = 1 if i == 7 else 3
        layers.append(
            torch.nn.Conv2d(channels, channels, size, padding=d * (size // 2), dilation=d)
        )
        if i < 7:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    torch.save(model.state_dict(), tmp_path / "context.pth")
    # The README's snippet:
    sd = torch.load(tmp_path / "context.pth", map_location="cpu")
    convs = [k[:-7] for k, v in sd.items() if k.endswith(".weight") and v.ndim == 4]
    np.savez(
        tmp_path / "context.npz",
        dilations=[1, 1, 2, 4, 8, 16, 1, 1],
        **{f"weight_{i}": sd[c + ".weight"].numpy() for i, c in enumerate(convs)},
        **{f"bias_{i}": sd[c + ".bias"].numpy() for i, c in enumerate(convs) if c + ".bias" in sd},
    )

    features = rng.random((20, 21, channels)).astype(np.float32)
    np.save(tmp_path / "f.npy", features)
    out = tmp_path / "out"
    result = run(
        "context",
        tmp_path / "f.npy",
        "--weights",
        tmp_path / "context.npz",
        "--boundary",
        "constant",
        "-o",
        out,
        "--format",
        "npy",
        "--final-only",
    )
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        want = model(torch.from_numpy(features.transpose(2, 0, 1).copy())[None])[0].numpy()
    assert_allclose(
        np.load(out / "f_context_l8_d1.npy"), want.transpose(1, 2, 0), rtol=1e-5, atol=1e-5
    )


class FakeTensor(np.ndarray):
    """Enough of a torch tensor for the export snippet: ``.ndim`` and ``.numpy()``."""

    def numpy(self):
        return np.asarray(self)


def test_pytorch_export_snippet_on_a_sequential_state_dict_without_torch(tmp_path, rng):
    # nn.Sequential(conv, ReLU, conv, ReLU, conv) names its parameters 0.*, 2.*, 4.*.
    shapes = {"0": (4, 3, 3, 3), "2": (4, 4, 3, 3), "4": (2, 4, 1, 1)}
    sd = {}
    for name, shape in shapes.items():
        sd[f"{name}.weight"] = rng.normal(size=shape).view(FakeTensor)
        if name != "2":
            sd[f"{name}.bias"] = rng.normal(size=shape[0]).view(FakeTensor)
    convs = [k[:-7] for k, v in sd.items() if k.endswith(".weight") and v.ndim == 4]
    np.savez(
        tmp_path / "context.npz",
        dilations=[1, 2, 1],
        **{f"weight_{i}": sd[c + ".weight"].numpy() for i, c in enumerate(convs)},
        **{f"bias_{i}": sd[c + ".bias"].numpy() for i, c in enumerate(convs) if c + ".bias" in sd},
    )
    with np.load(tmp_path / "context.npz") as archive:
        layers = stack_from_arrays(dict(archive))
    assert [layer.weights.shape for layer in layers] == list(shapes.values())
    assert [layer.bias is not None for layer in layers] == [True, False, True]
    assert [layer.dilation for layer in layers] == [1, 2, 1]
