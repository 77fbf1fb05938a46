import io
import struct
import sys
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image

from dilcli.io import images, kernelspecs, png
from dilcli.io.images import ImageError, load_image
from dilcli.io.png import encode_png
from dilcli.render.display import display_values, quantize


def _save(path, array, mode=None, **kwargs):
    Image.fromarray(array, mode).save(path, **kwargs) if mode else Image.fromarray(array).save(
        path, **kwargs
    )
    return path


def test_load_8bit_gray_scales_to_unit_interval(tmp_path):
    pixels = np.array([[0, 51, 255]], dtype=np.uint8)
    image = load_image(_save(tmp_path / "g.png", pixels))
    assert image.bits == 8 and image.alpha is None
    assert image.data.dtype == np.float32
    assert_allclose(image.data, pixels / 255.0, rtol=1e-6)


def test_load_16bit_gray_divides_by_65535(tmp_path):
    pixels = np.array([[0, 1, 65535, 32768]], dtype=np.uint16)
    image = load_image(_save(tmp_path / "g16.png", pixels))
    assert image.bits == 16
    assert_allclose(image.data, pixels / 65535.0, rtol=1e-6)


def test_rgba_alpha_is_split_off(tmp_path, rng):
    pixels = (rng.random((5, 6, 4)) * 255).astype(np.uint8)
    image = load_image(_save(tmp_path / "a.png", pixels, "RGBA"))
    assert image.data.shape == (5, 6, 3)
    assert_allclose(image.alpha, pixels[..., 3] / 255.0, rtol=1e-6)


def test_gray_alpha_and_palette_and_one_bit(tmp_path, rng):
    gray_alpha = (rng.random((4, 4, 2)) * 255).astype(np.uint8)
    image = load_image(_save(tmp_path / "la.png", gray_alpha, "LA"))
    assert image.data.shape == (4, 4) and image.alpha.shape == (4, 4)
    palette = Image.fromarray((rng.random((4, 5, 3)) * 255).astype(np.uint8)).convert("P")
    palette.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").data.shape == (4, 5, 3)
    Image.fromarray(np.eye(4, dtype=bool)).save(tmp_path / "bits.png")
    assert_array_equal(load_image(tmp_path / "bits.png").data, np.eye(4))


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    _save(tmp_path / "r.jpg", pixels, exif=exif, quality=95)
    data = load_image(tmp_path / "r.jpg").data
    assert data.shape == (20, 10, 3)
    assert data[:10].mean() > 0.9 and data[10:].mean() < 0.1  # white half now on top


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    data = load_image(tmp_path / "c.jpg").data
    assert data.shape == (4, 6, 3)
    assert data[..., 0].mean() > 0.9 and data[..., 1].mean() < 0.1  # red


def test_16bit_rgb_and_float_tiff_keep_full_precision(tmp_path, rng):
    import tifffile

    deep = (rng.random((6, 7, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", deep, photometric="rgb")
    image = load_image(tmp_path / "rgb16.tif")
    assert image.bits == 16
    assert_allclose(image.data, deep / 65535.0, rtol=1e-6)
    values = rng.normal(size=(5, 4)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values)
    assert_array_equal(load_image(tmp_path / "f.tif").data, values)


def test_npy_feature_maps_load_unscaled(tmp_path, rng):
    values = rng.normal(size=(5, 4, 7))
    np.save(tmp_path / "f.npy", values)
    image = load_image(tmp_path / "f.npy")
    assert image.bits == 32 and image.data.dtype == np.float32
    assert_allclose(image.data, values, rtol=1e-6)
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(ImageError, match=r"expected a non-empty real \(H, W\)"):
        load_image(tmp_path / "bad.npy")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "cannot identify|unknown or damaged"), (b"hello, not an image", "unknown or damaged")],
)
def test_not_an_image_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path)


def test_missing_file_and_pixel_limit(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    path = _save(tmp_path / "big.png", np.zeros((30, 40), np.uint8))
    with pytest.raises(ImageError, match="40x30 = 1,200 pixels, over the limit of 1,000"):
        load_image(path, max_pixels=1000)
    assert load_image(path, max_pixels=0).data.shape == (30, 40)


def test_display_mappings():
    y = np.array([[-2.0, -0.5, 0.0, 0.25, 3.0]], dtype=np.float32)
    assert_allclose(display_values(y, "abs"), [[1, 0.5, 0, 0.25, 1]])
    assert_allclose(display_values(y, "signed"), [[0, 0.25, 0.5, 0.625, 1]])
    assert_allclose(display_values(y, "clip", gain=2), [[0, 0, 0, 0.5, 1]])
    assert_allclose(display_values(y, "stretch", scale=4.0), [[0.5, 0.125, 0, 0.0625, 0.75]])
    colours = display_values(y, "diverging")
    assert colours.shape == (1, 5, 3)
    assert colours[0, 0, 2] > colours[0, 0, 0]  # negative is blue
    assert colours[0, 4, 0] > colours[0, 4, 2]  # positive is red
    assert_allclose(colours[0, 2], colours[0, 2, 0], atol=0.05)  # zero is near white/grey


def test_quantize_rounds_to_nearest():
    assert_array_equal(quantize(np.array([0, 0.51 / 255, 0.49 / 255, 1.0]), 8), [0, 1, 0, 255])
    assert quantize(np.array([1.0]), 16)[0] == 65535


def _decode_png(data):
    """Minimal independent PNG reader for filter-0 rows (what encode_png writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert (
            zlib.crc32(kind + body)
            == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        )
        if kind == b"IHDR":
            width, height, depth, color_type = struct.unpack(">IIBB", body[:10])
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color_type]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    assert np.all(rows[:, 0] == 0)
    dtype = ">u2" if depth == 16 else np.uint8
    return np.frombuffer(rows[:, 1:].tobytes(), dtype).reshape(height, width, channels)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_encode_png_16bit_round_trip(channels, rng):
    pixels = (rng.random((5, 7, channels)) * 65535).astype(np.uint16)
    data = encode_png(pixels)
    assert_array_equal(_decode_png(data), pixels)
    with Image.open(io.BytesIO(data)) as image:  # Pillow accepts it too
        image.load()
        assert image.size == (7, 5)


def test_save_pixels_8bit_reads_back_exactly(tmp_path, rng):
    pixels = (rng.random((5, 6, 3)) * 255).astype(np.uint8)
    png.save_pixels(tmp_path / "o.png", pixels)
    assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temporary left


@pytest.mark.parametrize("fmt", ["npy", "tiff"])
def test_save_float_is_exact(tmp_path, rng, fmt):
    values = rng.normal(size=(4, 5, 3)).astype(np.float32)
    path = tmp_path / f"v.{fmt}"
    images.save_float(path, values, fmt)
    assert_array_equal(load_image(path).data, values)


def test_load_kernel_file(tmp_path):
    (tmp_path / "edge.csv").write_text("1,0,-1\n2,0,-2\n1,0,-1\n")
    kernel = kernelspecs.load_kernel_file(tmp_path / "edge.csv")
    assert kernel.name == "edge" and kernel.parts[0].shape == (3, 3)
    np.save(tmp_path / "k.npy", np.ones((2, 2)))
    assert kernelspecs.load_kernel_file(tmp_path / "k.npy").parts[0].shape == (2, 2)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("level", [0, 1, 2, 3, 6, 9])
@pytest.mark.parametrize("isal", [True, False])
def test_png_deflated_in_many_blocks_is_one_valid_stream(monkeypatch, rng, channels, level, isal):
    monkeypatch.setattr(png, "PNG_BLOCK_BYTES", 100)  # dozens of blocks
    if not isal:  # as where the isal package is not installed: zlib deflates every level
        monkeypatch.setitem(sys.modules, "isal", None)
        assert png.deflate_module(level) is zlib
    pixels = (rng.random((37, 23, channels)) * 255).astype(np.uint8)
    data = encode_png(pixels, level)
    assert_array_equal(_decode_png(data), pixels)  # zlib.decompress checks the Adler-32
    with Image.open(io.BytesIO(data)) as image:
        assert_array_equal(np.asarray(image).reshape(pixels.shape), pixels)


def test_fast_png_levels_use_isal_and_the_others_zlib():
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    assert [png.deflate_module(level) for level in range(10)] == [zlib] + [isal_zlib] * 3 + [
        zlib
    ] * 6


def test_adler32_combine_matches_zlib(rng):
    for first_size, second_size in [(0, 0), (1, 5), (1000, 65521), (70000, 3)]:
        first, second = rng.bytes(first_size), rng.bytes(second_size)
        combined = png._adler32_combine(zlib.adler32(first), zlib.adler32(second), second_size)
        assert combined == zlib.adler32(first + second)


def test_kernel_files_named_only_by_their_extension(tmp_path):
    # '.npy' has no suffix to pathlib: it was read as text ('utf-8' codec can't decode)
    weights = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.save(tmp_path / ".npy", weights)
    kernel = kernelspecs.load_kernel_file(tmp_path / ".npy")
    np.testing.assert_array_equal(kernel.parts[0], weights)
    # no stem to name it by: named by its weights, as weights given as text are
    assert kernel.name == kernelspecs.weights_name(kernel.parts)
    (tmp_path / ";;.csv").write_text("1,1\n")
    assert kernelspecs.load_kernel_file(tmp_path / ";;.csv").name == "--"
