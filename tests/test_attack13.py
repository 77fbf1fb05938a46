"""A hostile user's inputs to images of any size: the shapes, stores and failures that
broke the streamed path once (issue 13's review), each against an independent reader."""

import numpy as np
import pytest
from conftest import run_cli, zarr_store

from dilcli.io.regions import open_reader, open_writer


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((700, 1), "float32"), ((700, 257), "float32"), ((700, 1), "uint8"), ((300, 1, 3), "uint16")],
)
def test_tiff_outputs_one_column_wide_hold_their_values(tmp_path, rng, shape, dtype):
    # tifffile's predictor garbled tiles one column wide: NaN in float32 columns.
    tifffile = pytest.importorskip("tifffile")
    data = (rng.random(shape) * 200).astype(dtype)
    path = tmp_path / "o.tif"
    with open_writer(path, shape=shape, dtype=dtype, fmt="tiff") as writer:
        for row in range(0, shape[0], 37):
            writer.write_rows(row, data[row : row + 37])
    np.testing.assert_array_equal(tifffile.imread(path), data)


def test_zarr_bands_shorter_than_a_chunk_decode_each_chunk_once(tmp_path, rng):
    pytest.importorskip("zarr")
    data = rng.random((90, 70)).astype(np.float32)
    store = zarr_store(tmp_path / "z.zarr", data, (90, 70))  # one chunk: the whole image
    with open_reader(store, max_pixels=0) as reader:
        array, reads = reader._array, []

        class Counted:
            def __getitem__(self, where):
                reads.append(where)
                return array[where]

        reader._array = Counted()
        rows = [reader.read(row, min(row + 3, 90)) for row in range(0, 90, 2)]
    for row, band in zip(range(0, 90, 2), rows, strict=True):
        np.testing.assert_array_equal(band, data[row : row + 3])
    assert len(reads) == 1  # was one decoding of the whole chunk per band


def test_a_small_zarr_store_of_huge_chunks_is_refused_before_decoding(tmp_path):
    # 1.6 GB decoded for any read of a 1000 x 1000 image: the size of a chunk
    zarr = pytest.importorskip("zarr")
    from dilcli.io.images import ImageError

    store = tmp_path / "bomb.zarr"
    zarr.create_array(store=str(store), shape=(1000, 1000), chunks=(40000, 40000), dtype="u1")
    with pytest.raises(ImageError, match=r"chunks of \(40000, 40000\)"):
        open_reader(store, max_pixels=0)
    # chunks larger than a small image, as zarr users write them, stay readable
    zarr.create_array(
        store=str(tmp_path / "ok.zarr"), shape=(10, 10), chunks=(4096, 4096), dtype="u1"
    )
    with open_reader(tmp_path / "ok.zarr", max_pixels=0) as reader:
        assert reader.read(0, 10).shape == (10, 10)


@pytest.mark.parametrize(("size", "bound"), [("100", "at least 1M"), ("9999999T", "at most")])
def test_a_max_memory_out_of_range_names_the_bound_it_crosses(tmp_path, size, bound):
    np.save(tmp_path / "a.npy", np.zeros((4, 4), np.float32))
    result = run_cli("convolve", tmp_path / "a.npy", "-o", tmp_path / "o", "--max-memory", size)
    assert result.exit_code == 2
    assert f"out of range: give {bound}" in result.output


def _zarr_output(path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    with open_writer(path, shape=data.shape, dtype="float32", fmt="zarr") as writer:
        writer.write_rows(0, data)
    return data


def test_a_zarr_output_replaces_a_file_or_link_but_never_a_folder_of_other_files(tmp_path):
    zarr = pytest.importorskip("zarr")
    from dilcli.io.images import ImageError

    (tmp_path / "file.zarr").write_text("an old file")  # was: 'Not a directory'
    (tmp_path / "link.zarr").symlink_to(tmp_path / "nowhere")
    for name in ("file.zarr", "link.zarr"):
        data = _zarr_output(tmp_path / name)
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / name))[:], data)
    mine = tmp_path / "mine.zarr" / "notes"
    mine.mkdir(parents=True)
    (mine / "keep.txt").write_text("the user's")  # was: removed with the folder
    with pytest.raises(ImageError, match="a folder of other files"):
        _zarr_output(tmp_path / "mine.zarr")
    assert (mine / "keep.txt").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.zarr", "link.zarr", "mine.zarr"]
