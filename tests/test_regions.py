"""Images read and written in parts (io/regions.py) against the whole-image path.

Readers: every band (with a halo, as the streaming engine asks for them) and any column
range equal ``load_image(path).data`` sliced, exactly (``np.array_equal``), for TIFFs
that tifffile writes in every layout, compression, depth and channel count, for
``.npy`` and for Zarr; files the whole-image decoder reads in a way not reproduced are
refused (None), never read differently. Writers: bands of random heights round-trip
exactly through independent readers (tifffile, numpy, Pillow, zarr), a streamed PNG is
the whole image's PNG byte for byte, and nothing appears under the final name before
commit. Hostile headers fail in one line, fast, in little memory.
"""

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from dilcli.io import atomic
from dilcli.io.images import ImageError, load_image
from dilcli.io.png import encode_png
from dilcli.io.regions import MAX_SEGMENT_BYTES, open_reader, open_writer

HEIGHT, WIDTH = 45, 61  # odd sizes: partial tiles and strips at the right and bottom


def _image(rng, dtype, channels, shape=(HEIGHT, WIDTH)):
    """Random samples over the dtype's whole range (floats: with NaN and Inf)."""
    full = shape + ((channels,) if channels > 1 else ())
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = rng.normal(size=full).astype(dtype)
        values.flat[[3, 50, 77]] = [np.nan, np.inf, -np.inf]
        return values
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, full, endpoint=True).astype(dtype)


def _smooth(rng, channels, shape=(HEIGHT, WIDTH)):
    """uint8 content JPEG keeps close (random noise would do too, but reads oddly)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    planes = [128 + 100 * np.sin(x / (5 + c) + y / 7 + rng.random()) for c in range(channels)]
    values = np.stack(planes, -1).astype(np.uint8)
    return values[..., 0] if channels == 1 else values


def _write_tiff(path, data, **options):
    with warnings.catch_warnings():  # tifffile warns of some legal but odd layouts
        warnings.simplefilter("ignore")
        tifffile.imwrite(path, data, **options)
    return path


def _bands(height, size=9, halo=3):
    """(r0, r1) of bands of ``size`` rows with a halo, top to bottom, as the engine reads."""
    return [(max(0, top - halo), min(height, top + size + halo)) for top in range(0, height, size)]


def _assert_reads_like_load_image(path, **options):
    """Every band, a column range and the alpha equal load_image's, exactly."""
    whole = load_image(path, **options)
    reader = open_reader(path, **options)
    assert reader is not None
    with reader:
        assert reader.shape == whole.data.shape
        assert reader.bits == whole.bits
        assert reader.has_alpha == (whole.alpha is not None)
        for r0, r1 in _bands(reader.shape[0]):
            data, alpha = reader.read_with_alpha(r0, r1)
            assert data.dtype == np.float32
            np.testing.assert_array_equal(data, whole.data[r0:r1])
            assert np.array_equal(data, whole.data[r0:r1])  # also -0.0 vs 0.0 in place
            if whole.alpha is None:
                assert alpha is None
            else:
                assert np.array_equal(alpha, whole.alpha[r0:r1])
        assert reader.notes == whole.notes
        width = reader.shape[1]
        assert np.array_equal(reader.read(5, 30, 7, width - 4), whole.data[5:30, 7 : width - 4])
        assert np.array_equal(reader.read(0, 1, width - 1), whole.data[:1, width - 1 :])
    return whole


# --- TIFF ---------------------------------------------------------------------------

COMPRESSIONS = [None, "zlib", "adobe_deflate", "lzw", "zstd", "packbits", "lzma", "jpeg"]
LAYOUTS = {
    "tiled": dict(tile=(16, 32)),
    "strips": dict(rowsperstrip=7),
    "bigtiff-tiled": dict(tile=(32, 16), bigtiff=True),
    "one-strip": dict(rowsperstrip=HEIGHT),
}


TIFF_CASES = [
    (compression, layout, dtype, channels)
    for compression in COMPRESSIONS
    for layout in LAYOUTS
    for dtype in ("uint8", "uint16", "float32")
    for channels in (1, 3, 4)
    # JPEG holds 8-bit gray or RGB; PackBits floats are written by tifffile only
    if (compression != "jpeg" or (dtype == "uint8" and channels != 4))
    and (compression != "packbits" or dtype != "float32")
]


@pytest.mark.parametrize(("compression", "layout", "dtype", "channels"), TIFF_CASES)
def test_tiff_bands_equal_load_image(tmp_path, rng, compression, layout, dtype, channels):
    data = _smooth(rng, channels) if compression == "jpeg" else _image(rng, dtype, channels)
    options = dict(LAYOUTS[layout], compression=compression)
    options["photometric"] = "rgb" if channels >= 3 else "minisblack"
    if channels == 4:
        options["extrasamples"] = [2]  # unassociated alpha
    if compression not in (None, "packbits", "jpeg"):
        options["predictor"] = True
    path = _write_tiff(tmp_path / "x.tif", data, **options)
    _assert_reads_like_load_image(path)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float64"])
@pytest.mark.parametrize("planar", ["contig", "separate"])
@pytest.mark.parametrize("photometric", ["minisblack", "miniswhite", "rgb"])
def test_tiff_sample_layouts_equal_load_image(tmp_path, rng, dtype, planar, photometric):
    channels = 3 if photometric == "rgb" else 2 if planar == "separate" else 1
    if dtype == "uint8" and channels == 2:
        channels = 1  # 8-bit gray+alpha planes: Pillow misreads them (refused, below)
    data = _image(rng, dtype, channels)
    options = dict(photometric=photometric, tile=(16, 16), compression="zlib")
    if channels > 1:
        options["planarconfig"] = planar
        data = np.moveaxis(data, -1, 0) if planar == "separate" else data
        if photometric != "rgb":
            options["extrasamples"] = [2]
    path = _write_tiff(tmp_path / "x.tif", data, **options)
    _assert_reads_like_load_image(path)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_tiff_orientation_equals_load_image(tmp_path, rng, orientation, dtype):
    tag = [(274, 3, 1, orientation, True)]
    tiled = _write_tiff(tmp_path / "t.tif", _image(rng, dtype, 3), tile=(16, 16), extratags=tag)
    whole = _assert_reads_like_load_image(tiled)
    assert whole.data.shape[:2] == ((WIDTH, HEIGHT) if orientation > 4 else (HEIGHT, WIDTH))
    strips = _write_tiff(tmp_path / "s.tif", _image(rng, dtype, 1), rowsperstrip=5, extratags=tag)
    if orientation > 4:  # a band of rows would be a band of columns of every strip
        assert open_reader(strips) is None
    else:
        _assert_reads_like_load_image(strips)


def test_tiff_8bit_variants_equal_load_image(tmp_path, rng):
    """Palettes, bilevel (both polarities), inverted gray and a non-alpha extra sample,
    the conversions Pillow makes for the whole-image path."""
    colormap = rng.integers(0, 65536, (3, 256), dtype=np.uint16)
    index = _image(rng, "uint8", 1)
    _assert_reads_like_load_image(
        _write_tiff(
            tmp_path / "p.tif", index, photometric="palette", colormap=colormap, tile=(16, 16)
        )
    )
    for photometric in ("minisblack", "miniswhite"):
        bits = rng.integers(0, 2, (HEIGHT, WIDTH)).astype(bool)
        path = _write_tiff(tmp_path / f"b{photometric}.tif", bits, photometric=photometric)
        _assert_reads_like_load_image(path)
    path = _write_tiff(
        tmp_path / "w.tif", index, photometric="miniswhite", compression="lzw", rowsperstrip=4
    )
    _assert_reads_like_load_image(path)
    for channels, photometric in ((2, "minisblack"), (4, "rgb")):
        extra = _image(rng, "uint8", channels)
        path = _write_tiff(
            tmp_path / f"x{channels}.tif", extra, photometric=photometric, extrasamples=[0]
        )
        whole = _assert_reads_like_load_image(path)
        assert whole.alpha is None and whole.data.shape[2:] == (() if channels == 2 else (3,))


def test_tiff_jpeg_with_shared_tables_equals_load_image(tmp_path):
    """libvips (libtiff) writes JPEG tiles with shared JPEGTables and YCbCr 2x2."""
    pyvips = pytest.importorskip("pyvips")
    rgb = _smooth(np.random.default_rng(5), 3, (300, 413))
    image = pyvips.Image.new_from_array(rgb, interpretation="srgb")
    path = tmp_path / "vips.tif"
    image.tiffsave(str(path), tile=True, tile_width=64, tile_height=64, compression="jpeg")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.jpegtables is not None
    _assert_reads_like_load_image(path)


def test_tiff_layouts_not_reproduced_are_refused(tmp_path, rng):
    """8-bit associated alpha (Pillow un-premultiplies), CMYK, gray+alpha planes: None,
    so the caller decodes them whole, never differently."""
    rgba = _image(rng, "uint8", 4)
    refused = [
        _write_tiff(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=[1]),
        _write_tiff(tmp_path / "c.tif", rgba, photometric="separated"),
        _write_tiff(
            tmp_path / "g.tif",
            np.moveaxis(_image(rng, "uint8", 2), -1, 0),
            photometric="minisblack",
            planarconfig="separate",
            extrasamples=[2],
            compression="zlib",  # (uncompressed, Pillow refuses it)
        ),
    ]
    for path in refused:
        load_image(path)  # the whole-image path reads them
        assert open_reader(path) is None


def test_decoded_whole_formats_give_none(tmp_path, rng):
    pixels = _image(rng, "uint8", 3)
    for name in ("x.png", "x.jpg", "x.bmp", "x.webp", "x.gif"):
        Image.fromarray(pixels).save(tmp_path / name)
        assert open_reader(tmp_path / name) is None


def test_uncompressed_strip_file_reads_rows_not_strips(tmp_path, rng):
    """One uncompressed strip of the whole image (common from scanners): rows are read
    where they lie, not the strip."""
    data = _image(rng, "uint16", 3, (400, 300))
    path = _write_tiff(tmp_path / "one.tif", data, rowsperstrip=400, photometric="rgb")
    with open_reader(path) as reader:
        assert reader.working_bytes(10) == 10 * 300 * 3 * 2
    _assert_reads_like_load_image(path)


def test_band_reads_decode_each_tile_once_in_band_memory(tmp_path, rng):
    """Bands with halos decode each tile once (the last band's tiles are kept), and
    reading the whole image band by band holds about one band, not the image."""
    height, width, tile = 1024, 1024, 64
    data = _image(rng, "uint16", 1, (height, width))
    path = _write_tiff(tmp_path / "t.tif", data, tile=(tile, tile), compression="zlib")
    expected = data.astype(np.float32) / np.float32(65535)
    reader = open_reader(path, max_pixels=0)
    decoded = []
    original = reader._decode
    reader._decode = lambda *args: decoded.append(args[1]) or original(*args)
    tracemalloc.start()
    try:
        for r0, r1 in _bands(height, size=tile, halo=5):
            assert np.allclose(reader.read(r0, r1), expected[r0:r1], rtol=0, atol=1e-7)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        reader.close()
    assert sorted(decoded) == list(range((height // tile) * (width // tile)))
    band = (tile + 10) * width * 4  # the float32 band returned
    tiles = 3 * tile * width * 2  # the tiles of (at most) three rows of tiles, as stored
    assert peak < 4 * (band + tiles) < height * width * 4  # the image would be 4 MB
    assert reader.working_bytes(tile + 10) <= tiles


# --- hostile and damaged TIFFs -------------------------------------------------------

# Opens a reader and reads a band in a fresh process; prints its peak memory (VmHWM).
PROBE = """
import sys
from dilcli.io.images import ImageError
from dilcli.io.regions import open_reader
try:
    reader = open_reader(sys.argv[1], max_pixels=int(sys.argv[2]))
    reader.read(0, 1, 0, 16)
    print("read")
except ImageError as error:
    print("error:", error)
with open("/proc/self/status") as status:
    print(next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) // 1024)
"""


def _hostile_tiff(path, width, height, tile, *, offsets=None, counts=100, data_bytes=64):
    """A tiny classic TIFF claiming ``width`` x ``height`` 8-bit pixels in tiles; its
    offset and byte-count tags claim one entry per tile (``offsets``: that many)."""
    tiles = -(-width // tile) * -(-height // tile) if offsets is None else offsets
    entries = [(256, width), (257, height), (258, 8), (259, 8), (262, 1), (277, 1)]
    entries += [(322, tile), (323, tile)]
    ifd = 8
    first_data = ifd + 2 + 12 * 10 + 4
    table = first_data + 16  # a table of (at most 4) offsets, then of byte counts
    body = b"II*\x00" + struct.pack("<I", ifd) + struct.pack("<H", 10)
    for tag, value in entries:
        body += struct.pack("<HHII", tag, 4, 1, value)
    body += struct.pack("<HHII", 324, 4, tiles, table if tiles > 1 else first_data)
    body += struct.pack("<HHII", 325, 4, tiles, table + 16 if tiles > 1 else counts)
    body += struct.pack("<I", 0) + bytes(16)
    body += struct.pack("<4I", *[first_data] * 4) + struct.pack("<4I", *[counts] * 4)
    path.write_bytes(body + bytes(data_bytes))
    return path


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory from /proc")
def test_hostile_tiff_headers_fail_in_one_line_and_little_memory(tmp_path):
    path = _hostile_tiff(tmp_path / "huge.tif", 10**6, 10**6, 256)
    for limit, reason in ((250_000_000, "over the limit"), (0, "tile offsets")):
        process = subprocess.run(
            [sys.executable, "-c", PROBE, str(path), str(limit)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        message, peak_mb = process.stdout.strip().splitlines()
        assert message.startswith("error: ") and reason in message, message
        assert "\n" not in message and "Traceback" not in process.stderr
        assert int(peak_mb) < 250, peak_mb
    with pytest.raises(ImageError, match="damaged TIFF file: tiles of 1048576 x 1048576"):
        open_reader(_hostile_tiff(tmp_path / "tile.tif", 100, 100, 2**20, offsets=1))


def test_truncated_tiles_fail_unless_allowed(tmp_path, rng):
    data = _image(rng, "uint16", 1, (64, 64))
    for compression in (None, "zlib"):
        path = _write_tiff(tmp_path / "t.tif", data, tile=(16, 16), compression=compression)
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            end = int(max(np.add(page.dataoffsets, page.databytecounts)))
            assert page.offset < min(page.dataoffsets)  # the IFD first: the cut hits data
        path.write_bytes(path.read_bytes()[: end - 300])
        with pytest.raises(ImageError) as whole:
            load_image(path)
        with open_reader(path) as reader:
            reader.read(0, 16)  # the first rows of tiles are whole
            with pytest.raises(ImageError, match="^damaged TIFF file: .*--allow-truncated"):
                reader.read(40, 64)
        assert "\n" not in str(whole.value)
        if compression is None:  # padded with zeros, as load_image pads the file
            whole = _assert_reads_like_load_image(path, allow_truncated=True)
            assert "decoded what could be read" in whole.notes[0]
        else:  # deflate cut short stays unreadable, as for load_image
            with pytest.raises(ImageError, match="unreadable even with --allow-truncated"):
                load_image(path, allow_truncated=True)
            unreadable = pytest.raises(ImageError, match="unreadable even with --allow-truncated")
            with open_reader(path, allow_truncated=True) as reader, unreadable:
                reader.read(40, 64)


def test_large_compressed_strips_are_not_read_in_parts(tmp_path, monkeypatch, rng):
    monkeypatch.setattr("dilcli.io.regions.MAX_SEGMENT_BYTES", 1000)
    data = _image(rng, "uint8", 1, (100, 100))
    assert open_reader(_write_tiff(tmp_path / "z.tif", data, compression="zlib")) is None
    reader = open_reader(_write_tiff(tmp_path / "u.tif", data))  # read by rows
    assert reader is not None
    reader.close()
    assert MAX_SEGMENT_BYTES >= 2**20


# --- .npy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "uint8", "int16", ">u2", "bool", "float16"]
)
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_npy_bands_equal_load_image(tmp_path, rng, dtype, channels):
    data = _image(rng, "float64", channels) * 1e3 if dtype != "bool" else None
    data = rng.integers(0, 2, (HEIGHT, WIDTH, channels)) if data is None else data
    if dtype == "float64":
        data.flat[11] = 1e300  # beyond float32: Inf, then 0, as load_image
    with np.errstate(invalid="ignore", over="ignore"):
        array = data.astype(dtype)
    np.save(tmp_path / "x.npy", array)
    whole = _assert_reads_like_load_image(tmp_path / "x.npy")
    if np.dtype(dtype).kind == "f":
        assert whole.notes  # the NaN and Inf counted alike


def test_npy_fortran_order_and_truncation(tmp_path, rng):
    data = _image(rng, "float32", 1)
    np.save(tmp_path / "f.npy", np.asfortranarray(data))
    assert open_reader(tmp_path / "f.npy") is None  # a band is spread over the file
    raw = io.BytesIO()
    np.save(raw, np.nan_to_num(data))
    (tmp_path / "t.npy").write_bytes(raw.getvalue()[:-1000])
    with pytest.raises(ImageError, match=r"^truncated .npy: .* \(--allow-truncated"):
        open_reader(tmp_path / "t.npy")
    _assert_reads_like_load_image(tmp_path / "t.npy", allow_truncated=True)
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    (tmp_path / "h.npy").write_bytes(header + text.ljust(117).encode() + b"\n")
    with pytest.raises(ImageError, match="over the limit"):
        open_reader(tmp_path / "h.npy")
    pickled = "{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }"
    (tmp_path / "o.npy").write_bytes(header + pickled.ljust(117).encode() + b"\n")
    with pytest.raises(ImageError, match="expected a non-empty real"):
        open_reader(tmp_path / "o.npy")


# --- Zarr ---------------------------------------------------------------------------


def test_zarr_and_ome_zarr_bands(tmp_path, rng):
    zarr = pytest.importorskip("zarr")
    data = _image(rng, "uint16", 3, (97, 83))
    expected = data.astype(np.float32) * np.float32(1 / 65535)  # the TIFF rule
    for fmt in (2, 3):
        store = tmp_path / f"plain{fmt}.zarr"
        array = zarr.create_array(
            store=str(store),
            shape=data.shape,
            chunks=(16, 32, 3),
            dtype=data.dtype,
            zarr_format=fmt,
        )
        array[:] = data
        with open_reader(store) as reader:
            assert (reader.format, reader.shape, reader.bits) == ("Zarr", data.shape, 16)
            for r0, r1 in _bands(97):
                assert np.array_equal(reader.read(r0, r1), expected[r0:r1])
    # OME-Zarr 0.4: a multiscales group, axes (c, y, x), level 0 at full resolution
    store = tmp_path / "image.ome.zarr"
    group = zarr.open_group(str(store), mode="w", zarr_format=2)
    chw = np.moveaxis(data, -1, 0)
    group.create_array("0", shape=chw.shape, chunks=(1, 32, 32), dtype=chw.dtype)[:] = chw
    group.create_array("1", shape=(3, 49, 42), dtype=chw.dtype)
    axes = [{"name": "c", "type": "channel"}, {"name": "y"}, {"name": "x"}]
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0"}, {"path": "1"}]}
    ]
    with open_reader(store) as reader:
        assert reader.shape == data.shape
        assert np.array_equal(reader.read(10, 60, 5, 80), expected[10:60, 5:80])
    floats = _image(rng, "float32", 1, (20, 30))
    store = tmp_path / "f.zarr"
    zarr.create_array(store=str(store), shape=floats.shape, dtype="f4")[:] = floats
    with open_reader(store) as reader:
        band = reader.read(0, 20)
    assert np.array_equal(band, np.where(np.isfinite(floats), floats, 0))
    assert reader.notes == ("3 NaN or infinite value(s) replaced by 0",)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ImageError, match="is a folder"):
        open_reader(tmp_path / "plain")
    volume = tmp_path / "v.zarr"
    group = zarr.open_group(str(volume), mode="w")
    group.create_array("0", shape=(4, 10, 10), dtype="u1")
    group.attrs["ome"] = {"multiscales": [{"axes": ["z", "y", "x"], "datasets": [{"path": "0"}]}]}
    with pytest.raises(ImageError, match="one z plane"):
        open_reader(volume)
    assert json.loads((volume / "zarr.json").read_text())["attributes"]["ome"]


# --- writers ------------------------------------------------------------------------


def _write_in_bands(writer, data, rng, largest=40):
    row = 0
    while row < len(data):
        height = int(rng.integers(1, largest))
        writer.write_rows(row, data[row : row + height])
        row += len(data[row : row + height])


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("compression", [None, "zstd", "lzw", "none"])
def test_tiff_writer_round_trips(tmp_path, rng, dtype, channels, compression):
    data = _image(rng, dtype, channels, (150, 77))
    path = tmp_path / "o.tif"
    with open_writer(
        path, shape=data.shape, dtype=dtype, fmt="tiff", tile=32, compression=compression
    ) as writer:
        _write_in_bands(writer, data, rng)
        assert not path.exists()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert tif.is_bigtiff and page.is_tiled and (page.tilelength, page.tilewidth) == (32, 32)
        codes = {None: 8, "zstd": 50000, "lzw": 5, "none": 1}
        assert page.compression == codes[compression]
        assert np.array_equal(page.asarray(), data, equal_nan=dtype == "float32")
        alpha = dtype != "float32" and channels in (2, 4)
        extra = (2,) if alpha else () if channels in (1, 3) else (0,) * (channels - 1)
        assert tuple(page.extrasamples) == extra
    if channels in (1, 3) or (channels in (2, 4) and dtype != "float32"):
        _assert_reads_like_load_image(path)


def test_npy_writer_is_numpy_save(tmp_path, rng):
    for dtype, channels in (("float32", 3), ("uint16", 1), ("uint8", 2)):
        data = _image(rng, dtype, channels, (120, 33))
        path = tmp_path / f"{dtype}.npy"
        with open_writer(path, shape=data.shape, dtype=dtype, fmt="npy") as writer:
            _write_in_bands(writer, data, rng)
        saved = io.BytesIO()
        np.save(saved, data)
        assert path.read_bytes() == saved.getvalue()


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("compression", [None, 0, 6, 9])
def test_png_streamed_is_the_whole_png(tmp_path, rng, dtype, channels, compression, monkeypatch):
    monkeypatch.setattr("dilcli.io.png.PNG_BLOCK_BYTES", 2048)  # many blocks, cut mid-band
    data = _image(rng, dtype, channels, (211, 97))
    path = tmp_path / "o.png"
    with open_writer(
        path, shape=data.shape, dtype=dtype, fmt="png", compression=compression
    ) as writer:
        _write_in_bands(writer, data, rng)
    assert path.read_bytes() == encode_png(data, 1 if compression is None else compression)
    with Image.open(path) as image:
        if dtype == "uint8":
            assert np.array_equal(np.asarray(image), data)
    whole = load_image(path)
    scale = 255 if dtype == "uint8" else 65535
    expected = data.astype(np.float32) * np.float32(1 / scale)
    color = expected[..., : channels - 1] if channels in (2, 4) else expected
    assert np.array_equal(
        whole.data, color[..., 0] if color.ndim == 3 and color.shape[2] == 1 else color
    )


def test_zarr_writer_round_trips(tmp_path, rng):
    zarr = pytest.importorskip("zarr")
    data = _image(rng, "float32", 3, (100, 70))
    path = tmp_path / "o.zarr"
    for attempt in range(2):  # the second replaces the first
        data = data + attempt
        with open_writer(path, shape=data.shape, dtype="float32", fmt="zarr", tile=32) as writer:
            _write_in_bands(writer, data, rng)
            assert attempt or not path.exists()
        assert np.array_equal(zarr.open_array(str(path), mode="r")[:], data, equal_nan=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.zarr"]


@pytest.mark.parametrize("fmt", ["tiff", "npy", "png", "zarr"])
def test_writers_are_atomic(tmp_path, rng, fmt):
    if fmt == "zarr":
        pytest.importorskip("zarr")
    data = _image(rng, "uint8", 3, (64, 50))
    path = tmp_path / f"o.{fmt}"

    def leftovers():
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(atomic.TEMP_PREFIX))

    # an exception inside the block: nothing under the name, no temporary left
    with (
        pytest.raises(KeyError),
        open_writer(path, shape=data.shape, dtype="uint8", fmt=fmt) as writer,
    ):
        writer.write_rows(0, data[:10])
        assert leftovers()  # the data goes to a temporary beside the final name
        raise KeyError("stop")
    assert not path.exists() and leftovers() == []
    # abort, and a writer left incomplete
    writer = open_writer(path, shape=data.shape, dtype="uint8", fmt=fmt)
    writer.write_rows(0, data[:20])
    writer.abort()
    assert not path.exists() and leftovers() == []
    incomplete = pytest.raises(ValueError, match="only 20 of 64 rows written")
    with incomplete, open_writer(path, shape=data.shape, dtype="uint8", fmt=fmt) as writer:
        writer.write_rows(0, data[:20])
    assert not path.exists() and leftovers() == []
    # a run that has ended commits nothing (the batch's commit guard)
    options = dict(path=path, shape=data.shape, dtype="uint8", fmt=fmt)
    ended = atomic.commit_guard(lambda: False)
    with ended, pytest.raises(atomic.RunEnded), open_writer(**options) as writer:
        writer.write_rows(0, data)
    assert not path.exists() and leftovers() == []
    # rows out of order, of the wrong type or shape are refused; the writer still works
    with open_writer(path, shape=data.shape, dtype="uint8", fmt=fmt) as writer:
        with pytest.raises(ValueError, match="expected row 0, got 5"):
            writer.write_rows(5, data[5:9])
        with pytest.raises(ValueError, match="float64 for a uint8 output"):
            writer.write_rows(0, data.astype(float))
        with pytest.raises(ValueError, match="does not fit"):
            writer.write_rows(0, data[:, :10])
        writer.write_rows(0, data)
    assert path.exists() and leftovers() == []


def test_open_writer_refuses_bad_arguments(tmp_path):
    cases = [
        (dict(shape=(0, 5), dtype="uint8", fmt="npy"), "positive sizes"),
        (dict(shape=(5, 5), dtype="uint8", fmt="jpeg"), "fmt must be one of"),
        (dict(shape=(5, 5), dtype="float32", fmt="png"), "dtype for png"),
        (dict(shape=(5, 5), dtype="int8", fmt="tiff"), "dtype for tiff"),
        (dict(shape=(5, 5), dtype="uint8", fmt="tiff", tile=100), "multiple of 16"),
        (dict(shape=(5, 5), dtype="uint8", fmt="tiff", compression="jpeg"), "TIFF compression"),
        (dict(shape=(5, 5), dtype="uint8", fmt="png", compression=10), "level 0-9"),
        (dict(shape=(5, 5, 5), dtype="uint8", fmt="png"), "1 to 4 channels"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            open_writer(tmp_path / "o", **options)
    assert list(tmp_path.iterdir()) == []


def test_tiff_writer_holds_one_row_of_tiles(tmp_path, rng):
    """Bands of odd heights wait for full rows of tiles, and no more is held."""
    height, width, tile = 1000, 1200, 64
    band = rng.random((37, width), dtype=np.float32)
    tracemalloc.start()
    try:
        with open_writer(
            tmp_path / "o.tif", shape=(height, width), dtype="float32", fmt="tiff", tile=tile
        ) as writer:
            for top in range(0, height, 37):
                writer.write_rows(top, band[: min(37, height - top)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    row_of_tiles = tile * width * 4
    assert peak < 6 * row_of_tiles < height * width * 4 / 2
    with tifffile.TiffFile(tmp_path / "o.tif") as tif:
        written = tif.pages.first.asarray()
    assert np.array_equal(written[:37], band) and np.array_equal(
        written[-(height % 37) :], band[: height % 37]
    )


def test_zarr_temporary_of_a_killed_run_is_removed(tmp_path):
    pytest.importorskip("zarr")
    writer = open_writer(tmp_path / "o.zarr", shape=(40, 40), dtype="uint8", fmt="zarr", tile=16)
    writer.write_rows(0, np.zeros((20, 40), np.uint8))
    (temp,) = tmp_path.iterdir()
    assert temp.is_dir() and temp.name.startswith(atomic.TEMP_PREFIX)
    # as if its writer had been killed: a process id that is not running
    os.rename(temp, temp.with_name(temp.name.replace(f"-{os.getpid()}~", "-999999999~")))
    assert atomic.remove_stale_temporaries(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []
