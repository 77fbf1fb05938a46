"""Zarr on the command line: stores as inputs (one each, never walked into), --format
zarr as output (whole or streamed, the same values), resume, dry runs and --json, and
one-line errors without zarr."""

import json

import numpy as np
import pytest
from conftest import run_cli, zarr_store

zarr = pytest.importorskip("zarr")

SMALL = "1M"  # forces bands on the stores below (each is several MiB whole)


@pytest.fixture
def stores(tmp_path):
    """Odd sizes, 1 and 3 channels, chunks that do not divide the image."""
    rng = np.random.default_rng(13)
    folder = tmp_path / "in"
    folder.mkdir()
    gray = (rng.random((411, 333)) * 65535).astype(np.uint16)
    zarr_store(folder / "gray.zarr", gray, (50, 70))
    rgb = (rng.random((301, 157, 3)) * 255).astype(np.uint8)
    zarr_store(folder / "rgb.zarr", rgb, (64, 48, 3), zarr_format=2)
    return folder


def arrays(folder):
    """``{name: values}`` of every Zarr store in ``folder``."""
    return {p.name: zarr.open_array(str(p), mode="r")[:] for p in sorted(folder.glob("*.zarr"))}


def files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.parametrize(
    "options",
    [
        ["convolve", "-k", "laplacian", "-d", "1,3,40", "--format", "zarr"],
        ["convolve", "-k", "sobel", "-d", "2,7", "--boundary", "wrap", "--format", "zarr",
         "--bits", "8", "--map", "signed"],
        ["convolve", "-k", "1,2;3,-4;0,5", "-d", "1,5", "--mode", "valid", "--boundary",
         "constant", "--cval", "0.25", "--format", "zarr", "--bits", "16"],
        ["context", "--preset", "starlet", "--levels", "3", "--format", "zarr"],
        ["context", "-d", "1,2,4", "-k", "laplacian", "--boundary", "mirror", "--mode", "full",
         "--format", "zarr"],
    ],
)  # fmt: skip
def test_streamed_zarr_equals_the_whole_image(tmp_path, stores, options):
    whole = run_cli(*options[:1], stores, *options[1:], "-o", tmp_path / "whole", "-j", "1")
    assert whole.exit_code == 0, whole.output
    streamed = run_cli(
        *options[:1], stores, *options[1:], "-o", tmp_path / "streamed", "-j", "1",
        "--max-memory", SMALL, "-v",
    )  # fmt: skip
    assert streamed.exit_code == 0, streamed.output
    assert streamed.output.count("streamed in") == 2  # both stores ran in bands
    a, b = arrays(tmp_path / "whole"), arrays(tmp_path / "streamed")
    assert len(a) >= 4 and a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
    expected = (
        np.float32 if "--bits" not in options else f"uint{options[options.index('--bits') + 1]}"
    )
    assert all(values.dtype == np.dtype(expected) for values in a.values())


def test_zarr_outputs_hold_the_values_of_npy_outputs(tmp_path, stores):
    # Independent writers: numpy's .npy and the Zarr store hold the same float32.
    args = ["-k", "laplacian", "-d", "1,4", "-j", "1"]
    assert (
        run_cli("convolve", stores, *args, "-o", tmp_path / "n", "--format", "npy").exit_code == 0
    )
    assert (
        run_cli("convolve", stores, *args, "-o", tmp_path / "z", "--format", "zarr").exit_code == 0
    )
    stored = arrays(tmp_path / "z")
    assert len(stored) == 4
    for name, values in stored.items():
        expected = np.load(tmp_path / "n" / name.replace(".zarr", ".npy"))
        assert np.array_equal(values, expected), name
    store = zarr.open_array(str(tmp_path / "z" / "rgb_laplacian_d1.zarr"), mode="r")
    assert store.chunks == (256, 256, 3) and store.compressors  # chunked and compressed


def test_a_zarr_input_gives_the_pixels_of_the_same_tiff(tmp_path, stores):
    # The store's values are those of a TIFF of the same samples: byte-identical PNGs.
    tifffile = pytest.importorskip("tifffile")
    tiff = tmp_path / "tif"
    tiff.mkdir()
    for name in ("gray", "rgb"):
        data = zarr.open_array(str(stores / f"{name}.zarr"), mode="r")[:]
        tifffile.imwrite(tiff / f"{name}.tif", data, photometric="rgb" if data.ndim == 3 else None)
    args = ["-d", "1,2", "-j", "1", "--max-memory", SMALL]
    assert run_cli("convolve", stores, *args, "-o", tmp_path / "a").exit_code == 0
    assert run_cli("convolve", tiff, *args, "-o", tmp_path / "b").exit_code == 0
    assert files(tmp_path / "a") == files(tmp_path / "b") and len(files(tmp_path / "a")) == 4


def test_stores_are_inputs_never_walked_into(tmp_path, stores):
    nested = tmp_path / "in" / "sub"
    nested.mkdir()
    group = zarr.open_group(str(nested / "scene.zarr"), mode="w")
    group.create_array("0", shape=(20, 30), dtype="u1")[:] = 7
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}],
    }
    np.save(stores / "plain.npy", np.ones((9, 11), np.float32))
    flat = run_cli("convolve", stores, "-o", tmp_path / "o", "-d", "1", "--dry-run", "--json")
    planned = [json.loads(line) for line in flat.stdout.splitlines()]
    inputs = sorted(line["input"] for line in planned if line["type"] == "input")
    assert [p.rsplit("/", 1)[1] for p in inputs] == ["gray.zarr", "plain.npy", "rgb.zarr"]
    deep = run_cli("convolve", stores, "-r", "-o", tmp_path / "o", "-d", "1", "--format", "zarr")
    assert deep.exit_code == 0, deep.output
    made = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*_d1*"))
    assert made == [
        "gray_laplacian_d1.zarr",
        "plain_laplacian_d1.zarr",
        "rgb_laplacian_d1.zarr",
        "sub/scene_laplacian_d1.zarr",
    ]
    # A store named on its own, and an array inside a store, are one input each.
    one = run_cli("convolve", nested / "scene.zarr", nested / "scene.zarr" / "0", "-o",
                  tmp_path / "p", "-d", "1", "-q")  # fmt: skip
    assert one.exit_code == 0, one.output
    assert sorted(p.name for p in (tmp_path / "p").iterdir() if p.name[0] != ".") == [
        "0_laplacian_d1.png",
        "scene_laplacian_d1.png",
    ]


def test_zarr_outputs_resume_and_changes_are_recomputed(tmp_path, stores):
    args = ["convolve", stores / "rgb.zarr", "-d", "1,2", "--format", "zarr", "-o", tmp_path / "o"]
    assert run_cli(*args, "--max-memory", SMALL).exit_code == 0
    again = run_cli(*args, "-v")
    assert again.exit_code == 0 and "already done" in again.output
    store = tmp_path / "o" / "rgb_laplacian_d2.zarr"
    original = zarr.open_array(str(store), mode="r")[:]
    chunk = next(p for p in sorted(store.rglob("*")) if p.is_file() and p.name != "zarr.json")
    for damage in ("edit", "remove"):
        if damage == "edit":
            chunk.write_bytes(chunk.read_bytes()[:-1] + b"\0")
        else:
            chunk.unlink()
        dry = run_cli(*args, "--dry-run")
        assert dry.exit_code == 0 and "rgb_laplacian_d2.zarr changed or went missing" in dry.output
        rerun = run_cli(*args, "-v")
        assert rerun.exit_code == 0 and "done: " in rerun.output, rerun.output
        assert np.array_equal(zarr.open_array(str(store), mode="r")[:], original)
    # A copy of the folder (other inodes and times, the same content) is still done.
    import shutil

    shutil.copytree(store, tmp_path / "copy.zarr")
    shutil.rmtree(store)
    shutil.move(tmp_path / "copy.zarr", store)
    assert "already done" in run_cli(*args, "-v").output
    # The input's chunks rewritten in place: computed again.
    source = zarr.open_array(str(stores / "rgb.zarr"), mode="r+")
    source[:5] = 0
    assert "the input changed since it was done" in run_cli(*args, "--dry-run").output
    assert "done: " in run_cli(*args, "-v").output
    assert not np.array_equal(zarr.open_array(str(store), mode="r")[:], original)
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith(".")) == [
        "rgb_laplacian_d1.zarr",
        "rgb_laplacian_d2.zarr",
    ]  # no temporary left


def test_dry_run_and_json_name_zarr_outputs_with_their_size(tmp_path, stores):
    args = ["convolve", stores / "gray.zarr", "-d", "3", "--format", "zarr", "-o", tmp_path / "o"]
    run = run_cli(*args, "--json")
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["input", "output", "summary"]
    assert lines[1]["output"].endswith("gray_laplacian_d3.zarr")
    store = tmp_path / "o" / "gray_laplacian_d3.zarr"
    size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    plan = [json.loads(line) for line in run_cli(*args, "--dry-run", "--json").stdout.splitlines()]
    assert plan[1]["status"] == "skip" and plan[1]["size"] == size
    shown = run_cli(*args, "--dry-run")
    assert f"gray_laplacian_d3.zarr  ({size:,} bytes)" in shown.output


def test_a_failed_streamed_zarr_run_leaves_no_store_and_reruns(tmp_path, stores):
    chunk = stores / "gray.zarr" / "c" / "5" / "2"  # met by one band in the middle
    good = chunk.read_bytes()
    chunk.write_bytes(good[: len(good) // 2])
    args = ["convolve", stores / "gray.zarr", "-d", "1", "--format", "zarr", "-o", tmp_path / "o"]
    failed = run_cli(*args, "--max-memory", SMALL)
    assert failed.exit_code == 1 and "gray.zarr: damaged Zarr store" in failed.output
    assert not (tmp_path / "o").exists()  # no store, no temporary
    chunk.write_bytes(good)
    assert run_cli(*args, "--max-memory", SMALL).exit_code == 0
    assert [p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith(".")] == [
        "gray_laplacian_d1.zarr"
    ]


def test_without_zarr_each_use_is_one_line(tmp_path, stores, monkeypatch):
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "zarr" else real(name, *a)
    )
    refused = run_cli("convolve", stores, "-o", tmp_path / "o", "--format", "zarr")
    assert refused.exit_code == 2 and "pip install 'dilcli[zarr]'" in refused.output
    assert "--format" in refused.output and not (tmp_path / "o").exists()
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr fails
    failed = run_cli("convolve", stores / "gray.zarr", "-o", tmp_path / "o")
    assert failed.exit_code == 1
    assert "gray.zarr: is a Zarr store: reading it needs zarr (pip install 'dilcli[zarr]')" in (
        failed.output
    )
    assert "Traceback" not in failed.output


def test_the_plan_counts_the_row_of_chunks_every_zarr_output_holds(tmp_path):
    """Each Zarr output fills a row of 256-row chunks before it can write one: the
    plan's working memory counted 2 MiB per output (a 3000 x 15000 float32 input at
    -d 1,2,4,8 peaked at 217 MB while -v said 'about 2 MiB')."""
    np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float32, shape=(600, 5000))
    args = ("convolve", tmp_path / "f.npy", "-d", "1,2,4,8", "-o", tmp_path / "out")
    args += ("--format", "zarr", "--max-memory", "4M", "--dry-run", "--json")
    details = json.loads(run_cli(*args).stdout.splitlines()[0])["details"]
    assert details["working_memory"] >= 4 * 256 * 5000 * 4 > details["max_memory"]
