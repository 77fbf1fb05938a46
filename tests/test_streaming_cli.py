"""Streamed runs (inputs over --max-memory, computed in bands) write the same bytes as
whole-image runs, resume like them, and leave nothing half-written."""

import json

import numpy as np
import pytest
from conftest import run_cli

tifffile = pytest.importorskip("tifffile")

SMALL = "1M"  # forces bands on the images below (each is several MiB whole)


@pytest.fixture
def inputs(tmp_path):
    """An odd-sized tiled 8-bit RGB TIFF, a 16-bit gray TIFF in strips, a float .npy."""
    rng = np.random.default_rng(11)
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = (rng.random((201, 163, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(folder / "rgb.tif", rgb, tile=(64, 64), compression="zlib", photometric="rgb")
    deep = (rng.random((517, 389)) * 65535).astype(np.uint16)
    tifffile.imwrite(folder / "deep.tif", deep, rowsperstrip=7)
    np.save(folder / "feats.npy", rng.standard_normal((173, 211, 3)).astype(np.float32))
    return folder


def outputs(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def both(tmp_path, source, *args):
    """Run the command whole and streamed; return both output folders' files."""
    whole = run_cli(*args[:1], source, *args[1:], "-o", tmp_path / "whole", "-j", "1")
    assert whole.exit_code == 0, whole.output
    streamed = run_cli(
        *args[:1], source, *args[1:], "-o", tmp_path / "streamed", "-j", "1",
        "--max-memory", SMALL, "--log", tmp_path / "log.jsonl",
    )  # fmt: skip
    assert streamed.exit_code == 0, streamed.output
    return outputs(tmp_path / "whole"), outputs(tmp_path / "streamed")


@pytest.mark.parametrize(
    "options",
    [
        ["convolve", "-k", "laplacian", "-d", "1,2,4,8"],
        ["convolve", "-k", "sobel", "-d", "3,40", "--boundary", "wrap", "--map", "signed"],
        ["convolve", "-k", "laplacian", "-d", "2", "--mode", "valid", "--format", "npy"],
        ["convolve", "-k", "1,2;3,-4;0,5", "-d", "1,7", "--mode", "full", "--boundary",
         "constant", "--cval", "0.25", "--convolve", "--map", "diverging"],
        ["convolve", "-k", "scharr", "-d", "5", "--format", "tiff", "--bits", "8"],
        ["convolve", "-d", "1,2", "--boundary", "mirror", "--format", "tiff", "--bits", "16"],
        ["context", "--preset", "starlet", "--levels", "4"],
        ["context", "--preset", "starlet", "--levels", "3", "--boundary", "wrap", "--format",
         "npy"],
        ["context", "--preset", "context-basic", "--format", "npy", "--boundary", "constant"],
        ["context", "-d", "1,2,4", "--init", "random", "--mode", "valid"],
        ["context", "-d", "1,3", "-k", "laplacian", "--final-only", "--boundary", "nearest"],
    ],
)  # fmt: skip
def test_streamed_run_writes_the_bytes_of_the_whole_image(tmp_path, inputs, options):
    whole, streamed = both(tmp_path, inputs, *options)
    assert whole and whole.keys() == streamed.keys()
    for name in whole:
        assert whole[name] == streamed[name], name


def test_streamed_float_tiff_holds_the_same_values(tmp_path, inputs):
    whole, streamed = both(tmp_path, inputs / "deep.tif", "convolve", "-d", "3", "--format", "tiff")
    for name in whole:
        a = tifffile.imread(tmp_path / "whole" / name)
        b = tifffile.imread(tmp_path / "streamed" / name)
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)


def test_context_large_mixes_channels_alike_in_bands(tmp_path, inputs):
    whole, streamed = both(
        tmp_path, inputs / "feats.npy", "context", "--preset", "context-large", "--format", "npy"
    )
    assert len(whole) == 8 and whole == streamed


def test_streamed_run_resumes_and_plans(tmp_path, inputs):
    from dilcli.batch import streamed
    from dilcli.batch.jobs import ConvolveJob
    from dilcli.core.kernels import named_kernel

    args = ["convolve", inputs, "-d", "1,8", "-o", tmp_path / "o", "--max-memory", SMALL, "-j", "1"]
    assert run_cli(*args).exit_code == 0
    again = run_cli(*args, "-v")
    assert again.exit_code == 0 and again.output.count("already done") == 3
    job = ConvolveJob(named_kernel("laplacian"), (1, 8), max_memory=2**20)
    details = job.plan_details(inputs / "deep.tif")
    assert details["streamed"] and details["bands"] > 1 and details["halo"] == (8, 8)
    # the band and the reader's tiles fit; the two PNG writers' blocks come on top
    writers = streamed.writers_bytes(job, details["shape"], range(2))
    assert writers > 0 and details["working_memory"] <= 2**20 + writers
    assert ConvolveJob(named_kernel("laplacian"), (1,)).plan_details(inputs / "deep.tif") == {}


def test_a_streamed_run_stopped_midway_leaves_no_output_and_reruns(tmp_path, inputs, monkeypatch):
    from dilcli.core import tiling

    real = tiling.compute_band

    def failing(plan, band, read_rows):
        if band == 3:
            raise OSError(28, "No space left on device")
        return real(plan, band, read_rows)

    monkeypatch.setattr(tiling, "compute_band", failing)
    args = ["convolve", inputs / "deep.tif", "-d", "1,2", "-o", tmp_path / "o", "-j", "1"]
    failed = run_cli(*args, "--max-memory", SMALL)
    assert failed.exit_code == 1 and "No space left on device" in failed.output
    # Nothing under a final name, no temporary: the folder, written nothing, is gone.
    assert not (tmp_path / "o").exists()
    monkeypatch.setattr(tiling, "compute_band", real)
    assert run_cli(*args, "--max-memory", SMALL).exit_code == 0
    whole = run_cli(*args[:-2], "-o", tmp_path / "w", "-j", "1")
    assert whole.exit_code == 0
    assert outputs(tmp_path / "o") == outputs(tmp_path / "w")


def test_whole_image_options_on_a_streamed_image(tmp_path, inputs):
    # Within --max-pixels the whole-image path serves them, as before streaming.
    montage = run_cli(
        "convolve", inputs / "deep.tif", "-d", "1", "-o", tmp_path / "m", "--montage",
        "--map", "stretch", "--max-memory", SMALL,
    )  # fmt: skip
    assert montage.exit_code == 0, montage.output
    refused = run_cli(
        "convolve", inputs / "deep.tif", "-d", "1", "-o", tmp_path / "r", "--montage",
        "--max-memory", SMALL, "--max-pixels", "0",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "--montage needs the whole image in memory" in refused.output
    with pytest.raises(ValueError, match="max_memory must be a positive number"):
        from dilcli.batch.jobs import ConvolveJob
        from dilcli.core.kernels import named_kernel

        ConvolveJob(named_kernel("laplacian"), (1,), max_memory=0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [("12", "out of range"), ("lots", "not a size"), ("-2G", "out of range"), ("", "not a size")],
)
def test_bad_max_memory_is_one_line(tmp_path, inputs, value, reason):
    result = run_cli("convolve", inputs, "-o", tmp_path / "o", "--max-memory", value)
    assert result.exit_code == 2
    assert reason in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_a_png_over_the_pixel_limit_names_the_formats_that_stream(tmp_path):
    from PIL import Image

    Image.new("L", (40, 30)).save(tmp_path / "big.png")
    result = run_cli("convolve", tmp_path / "big.png", "-o", tmp_path / "o", "--max-pixels", "100")
    assert result.exit_code == 1
    assert (
        "image is 40x30 = 1,200 pixels, over the limit of 100 (PNG is decoded whole: raise "
        "--max-pixels, 0 for no limit; TIFF, .npy and Zarr stream in bands)\n" in result.output
    )


def test_one_image_across_a_dask_cluster(tmp_path, inputs):
    distributed = pytest.importorskip("distributed")
    source = inputs / "rgb.tif"
    args = ["-k", "laplacian", "-d", "1,4", "--max-memory", SMALL]
    local = run_cli("convolve", source, *args, "-o", tmp_path / "local", "-j", "1")
    assert local.exit_code == 0
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster.scheduler_address) as client,
    ):
        with distributed.get_task_stream(client=client) as tasks:
            dask = run_cli(
                "convolve", source, *args, "-o", tmp_path / "dask", "--scheduler",
                cluster.scheduler_address, "--log", tmp_path / "log.jsonl",
            )  # fmt: skip
        assert dask.exit_code == 0, dask.output
    assert outputs(tmp_path / "local") == outputs(tmp_path / "dask")
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines[0]["status"] == "done"
    bands = [t for t in tasks.data if "compute_band_task" in str(t["key"])]
    workers = {t["worker"] for t in bands}
    assert len(bands) > 2 and len(workers) == 2  # the bands ran as tasks, on both workers


def test_thin_bands_of_a_deep_stack_grow_into_max_memory(tmp_path, monkeypatch):
    """A 21-channel context module 4000 wide gets bands of one row under the band cap,
    each recomputing every layer's 33-row halo; it takes --max-memory instead."""
    from dilcli.batch import streamed

    np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.uint8, shape=(300, 4000, 21))
    args = ("context", tmp_path / "f.npy", "--preset", "context-basic", "--final-only")
    args += ("-o", tmp_path / "out", "--dry-run", "--json", "--max-memory", "100M")

    def details():
        return json.loads(run_cli(*args).stdout.splitlines()[0])["details"]

    grown = details()
    monkeypatch.setattr(streamed, "MAX_WORK_RATIO", float("inf"))
    capped = details()
    assert capped["band_rows"] < 4 <= grown["band_rows"]
    assert capped["working_memory"] < grown["working_memory"] <= 100 * 2**20
