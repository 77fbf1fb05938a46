"""One image across a Dask cluster, its bands writing their own regions of a Zarr
output: the values of a local run, chunk for chunk; a band that fails leaves no store,
and the rerun completes."""

import json

import numpy as np
import pytest
from conftest import run_cli, zarr_store

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

# Over the whole images below, yet room for bands taller than a chunk (256 rows), so
# bands write whole chunk rows themselves and hand the rows two bands share back.
BUDGET = "6M"


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture
def stores(tmp_path):
    """Tall odd-sized stores, 1 and 3 channels, chunks that do not divide them."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "in"
    folder.mkdir()
    gray = (rng.random((6001, 97)) * 65535).astype(np.uint16)
    zarr_store(folder / "gray.zarr", gray, (300, 50))
    rgb = (rng.random((6007, 31, 3)) * 255).astype(np.uint8)
    zarr_store(folder / "rgb.zarr", rgb, (128, 40, 3))
    return folder


def arrays(folder):
    found = {}
    for path in sorted(folder.glob("*.zarr")):
        array = zarr.open_array(str(path), mode="r")
        found[path.name] = (array.chunks, array[:])
    return found


# 'same': bands of whole chunk rows, each written by its band; 'full': output rows
# shifted by the halo, so the chunk rows two bands share come back to the input's task.
@pytest.mark.parametrize("mode", ["same", "full"])
def test_bands_write_their_regions_as_a_local_run(tmp_path, stores, cluster, monkeypatch, mode):
    from dilcli.batch.console import BatchConsole

    reports = {"local": set(), "dask": set()}
    where = "local"
    monkeypatch.setattr(
        BatchConsole,
        "on_band",
        lambda self, path, done, total: reports[where].add((path, done, total)),
    )
    args = ["-k", "laplacian", "-d", "1,8", "--mode", mode, "--format", "zarr"]
    args += ["--max-memory", BUDGET]
    plan = run_cli("convolve", stores, *args, "-o", tmp_path / "local", "--dry-run", "--json")
    details = [json.loads(line).get("details") for line in plan.stdout.splitlines()]
    details = [d for d in details if d]
    assert len(details) == 2
    assert all(d["bands"] > 2 and d["band_rows"] % 256 == 0 for d in details)
    local = run_cli("convolve", stores, *args, "-o", tmp_path / "local", "-j", "1")
    assert local.exit_code == 0, local.output
    where = "dask"
    with (
        distributed.Client(cluster.scheduler_address) as client,
        distributed.get_task_stream(client=client) as tasks,
    ):
        dask = run_cli(
            "convolve", stores, *args, "-o", tmp_path / "dask", "--scheduler",
            cluster.scheduler_address,
        )  # fmt: skip
    assert dask.exit_code == 0, dask.output
    bands = [t for t in tasks.data if "compute_band_task" in str(t["key"])]
    assert len(bands) == sum(d["bands"] for d in details)
    assert len({t["worker"] for t in bands}) == 2  # the bands ran on both workers
    # Progress: every band of both inputs reported, as by a local run.
    assert reports["dask"] == reports["local"] and len(reports["local"]) == len(bands)
    a, b = arrays(tmp_path / "local"), arrays(tmp_path / "dask")
    assert len(a) == 4 and a.keys() == b.keys()
    for name, (chunks, values) in a.items():
        assert b[name][0] == chunks and np.array_equal(b[name][1], values), name
    # The bands' values are the whole image's (read at once, no bands at all).
    whole = run_cli("convolve", stores, *args[:-2], "-o", tmp_path / "whole", "-j", "1")
    assert whole.exit_code == 0
    for name, (_, values) in arrays(tmp_path / "whole").items():
        assert np.array_equal(b[name][1], values), name


def test_a_failing_band_leaves_no_store_and_the_rerun_completes(tmp_path, stores, cluster):
    # A damaged chunk of the input, met by one band (on one worker) only.
    chunk = stores / "gray.zarr" / "c" / "9" / "1"
    good = chunk.read_bytes()
    chunk.write_bytes(b"not zstd" + good[8:])
    args = ["convolve", stores / "gray.zarr", "-d", "1,3", "--format", "zarr", "-o", tmp_path / "o"]
    args += ["--max-memory", BUDGET, "--scheduler", cluster.scheduler_address]
    failed = run_cli(*args)
    assert failed.exit_code == 1
    assert "gray.zarr: damaged Zarr store" in failed.output, failed.output
    assert not (tmp_path / "o").exists()  # no store, no temporary: nothing at all
    chunk.write_bytes(good)
    rerun = run_cli(*args)
    assert rerun.exit_code == 0, rerun.output
    local = run_cli(*args[:-2], "-o", tmp_path / "local", "-j", "1")
    assert local.exit_code == 0
    a, b = arrays(tmp_path / "local"), arrays(tmp_path / "o")
    assert len(a) == 2 and all(np.array_equal(a[n][1], b[n][1]) for n in a)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        ".dilcli-record.jsonl",
        "gray_laplacian_d1.zarr",
        "gray_laplacian_d3.zarr",
    ]


def test_zarr_regions_complete_the_chunk_rows_bands_share(tmp_path):
    # The writer and its regions alone: bands of any height, in any order.
    from dilcli.io.regions import open_writer

    data = np.random.default_rng(2).random((203, 37, 2)).astype(np.float32)
    writer = open_writer(
        tmp_path / "o.zarr", shape=data.shape, dtype="float32", fmt="zarr", tile=32
    )
    region = writer.regions()
    edges = [0, 5, 64, 70, 150, 203]
    for top, bottom in reversed(list(zip(edges, edges[1:]))):
        written, ends = region.write(top, data[top:bottom])
        writer.written_elsewhere(written)
        for row, rows in ends:
            writer.write_region(row, rows)
    writer.commit()
    assert np.array_equal(zarr.open_array(str(tmp_path / "o.zarr"), mode="r")[:], data)
    # Rows missing: nothing committed.
    writer = open_writer(
        tmp_path / "p.zarr", shape=data.shape, dtype="float32", fmt="zarr", tile=32
    )
    writer.write_region(0, data[:40])
    with pytest.raises(ValueError, match="only 40 of 203 rows written"):
        writer.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.zarr"]


def test_a_bar_of_bands_on_a_terminal():
    import io
    from pathlib import Path

    from rich.console import Console

    from dilcli.batch.console import BatchConsole
    from dilcli.batch.tasks import InputFile, TaskResult

    console = BatchConsole(1)
    console.console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with console:
        console.on_band("/x/m.tif", 1, 3)
        assert [task.description for task in console.progress.tasks] == ["m.tif bands"]
        assert console.progress.tasks[0].completed == 1
        console.on_band("/x/m.tif", 3, 3)
        assert console.progress.tasks == []
        console.on_band("/x/n.tif", 1, 3)
        failed = TaskResult(InputFile(Path("/x/n.tif"), Path("n.tif")), "failed", reason="no")
        console.on_result(failed)
        assert console.progress.tasks == []
        console.on_band("/x/n.tif", 2, 3)  # a cluster's late report: no bar comes back
        assert console.progress.tasks == []
