"""A corpus of broken and unusual image files, each with what dilcli must make of it.

``python tests/make_corpus.py FOLDER`` writes the files; ``tests/test_corpus.py`` replays
them through ``load_image`` and ``dilcli convolve``. Every file is built here, from
fixed seeds, in a few kilobytes: damaged files (empty, truncated, bad CRC, corrupt
zlib), header bombs (a tiny file claiming billions of pixels, frames or bytes of text)
and unusual but valid ones (16-bit and float TIFF, EXIF rotation, animation, 1x1).

Each :class:`Case` says what :func:`dilcli.imageio.load_image` must return: ``"ok"``
(with the shape and bit depth) or a fragment of the ``ImageError`` message; and what
``allow_truncated`` changes.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 8
LIMIT = "over the limit of 250,000,000"
# What `dilcli convolve` says of the TIFF and .npy header bombs, read in parts.
STRIP_BOMB = (
    "strip 0 holds 16 bytes, its 100,000 rows need",
    "unreadable even with --allow-truncated",
)
WIDE_BAND = "a band of one row of this 10,000-pixel-wide image needs"
NOT_PADDED = "less than half of it is there, so it is not padded"
TRUNCATED = "(--allow-truncated decodes what can be read)"
NAN_NOTE = "NaN or infinite value(s) replaced by 0"


@dataclass(frozen=True)
class Case:
    """One corpus file and the outcome dilcli owes it."""

    name: str
    build: Callable[[], bytes]
    kind: str  # damaged, bomb, format, unusual: how the counts are grouped
    load: str = "ok"  # "ok" or a fragment of the ImageError message
    lenient: str | None = None  # the outcome with allow_truncated, if it differs
    shape: tuple | None = None  # data shape when the outcome is "ok"
    bits: int | None = None
    note: str | None = None  # a fragment of a warning (LoadedImage.notes), if one is due
    frames: int = 1
    # The outcome of `dilcli convolve` where it differs from load_image's, strict and
    # with --allow-truncated: formats read in parts (TIFF, .npy) have no pixel limit
    # there, so a header bomb fails on its missing data, or on a band over --max-memory.
    command: tuple[str, str] | None = None

    def outcome(self, allow_truncated=False):
        return self.lenient if allow_truncated and self.lenient is not None else self.load

    def command_outcome(self, allow_truncated=False):
        if self.command is None:
            return self.outcome(allow_truncated)
        return self.command[allow_truncated]


# --- building blocks ------------------------------------------------------------------


def _rng():
    return np.random.default_rng(SEED)


def _pixels(shape, dtype=np.uint8):
    top = np.iinfo(dtype).max
    return (_rng().random(shape) * top).astype(dtype)


def _pillow(array_or_image, fmt, **options):
    from PIL import Image

    image = array_or_image
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _tiff(array, **options):
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _png(width, height, rows=b"", *, depth=8, color=0, extra=()):
    """A PNG from parts: IHDR, ``extra`` chunks, one IDAT of ``rows``, IEND."""
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    chunks = [
        _chunk(b"IHDR", header),
        *extra,
        _chunk(b"IDAT", zlib.compress(rows)),
        _chunk(b"IEND", b""),
    ]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _gray_png():
    from dilcli.io.png import encode_png

    return encode_png(_pixels((24, 16)), 6)


def _rgb_png():
    return _pillow(_pixels((24, 16, 3)), "PNG")


def _rgb_jpeg():
    return _pillow(_pixels((24, 16, 3)), "JPEG", quality=90)


def _idat_offset(data):
    return data.index(b"IDAT") - 4


def _truncated_png():
    data = _rgb_png()
    return data[: _idat_offset(data) + 40]


def _bad_crc_png():
    data = bytearray(_rgb_png())
    start = _idat_offset(data)
    (length,) = struct.unpack(">I", data[start : start + 4])
    data[start + 8 + length] ^= 0xFF  # the CRC's first byte
    return bytes(data)


def _bad_zlib_png():
    """Valid CRCs around a corrupt deflate stream: only decoding finds it."""
    rows = b"".join(b"\0" + bytes(range(i, i + 48)) for i in range(24))
    stream = bytearray(zlib.compress(rows))
    stream[6:10] = b"\xff\xff\xff\xff"
    header = struct.pack(">IIBBBBB", 16, 24, 8, 2, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header), _chunk(b"IDAT", bytes(stream)), _chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _truncated_jpeg():
    data = _pillow(_pixels((64, 48, 3)), "JPEG", quality=95)
    return data[: len(data) // 2]


def _jpeg_header_only():
    data = _rgb_jpeg()
    return data[: data.index(b"\xff\xda")]  # up to the start of scan: no image data


def _animated_gif(frames=3):
    from PIL import Image

    images = [
        Image.fromarray(np.full((10, 12), 40 * i, np.uint8)).convert("P") for i in range(frames)
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=50)
    return buffer.getvalue()


def _truncated_gif():
    data = _pillow(_pixels((48, 40, 3)), "GIF")
    return data[: len(data) // 2]


def _apng(frames=2):
    from PIL import Image

    images = [Image.fromarray(np.full((6, 5, 3), 100 * i, np.uint8)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PNG", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def _tiff16_rgb():
    return _tiff(_pixels((9, 7, 3), np.uint16), photometric="rgb")


def _float_tiff():
    return _tiff(_rng().normal(size=(6, 5)).astype(np.float32))


def _float_tiff_with_nan():
    values = _rng().normal(size=(6, 5)).astype(np.float32)
    values[1, 2], values[3, 3], values[4, 0] = np.nan, np.inf, -np.inf
    return _tiff(values)


def _multipage_tiff16(pages=3):
    import tifffile

    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for page in range(pages):
            writer.write(np.full((5, 4), 1000 * (page + 1), np.uint16), photometric="minisblack")
    return buffer.getvalue()


def _rotated_tiff16():
    """16-bit, orientation 6 (rotate 90 degrees clockwise to display): 4x10 becomes 10x4."""
    return _tiff(_pixels((4, 10), np.uint16), extratags=[(274, "H", 1, 6, True)])


def _truncated_tiff16():
    data = _tiff(_pixels((32, 24, 3), np.uint16), photometric="rgb")
    return data[: len(data) * 2 // 3]


def _exif_rotated_jpeg():
    from PIL import Image

    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: 20 wide becomes 20 high
    return _pillow(pixels, "JPEG", exif=exif, quality=95)


def _cmyk_jpeg():
    from PIL import Image

    return _pillow(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), "JPEG")


def _cmyk_tiff():
    from PIL import Image

    return _pillow(Image.new("CMYK", (6, 4), (0, 255, 255, 0)), "TIFF")


def _one_bit_png():
    from PIL import Image

    return _pillow(Image.fromarray(np.eye(7, dtype=bool)), "PNG")


def _palette_png(transparent=False):
    from PIL import Image

    image = Image.fromarray(_pixels((8, 9, 3))).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=8
    )
    options = {"transparency": 0} if transparent else {}
    return _pillow(image, "PNG", **options)


def _gray_alpha_png():
    from PIL import Image

    return _pillow(Image.fromarray(_pixels((5, 6, 2)), "LA"), "PNG")


def _rgba16_png():
    from dilcli.io.png import encode_png

    return encode_png(_pixels((5, 6, 4), np.uint16))


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npy_header(shape, descr="<f4"):
    """An .npy header with no data behind it."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _npy_with_nan():
    values = _rng().normal(size=(4, 5, 2))
    values[0, 0, 0], values[2, 3, 1] = np.nan, -np.inf
    return _npy(values)


def _npy_object():
    buffer = io.BytesIO()
    np.save(buffer, np.array([[{}, None]], dtype=object), allow_pickle=True)
    return buffer.getvalue()


# --- header bombs: a few hundred bytes claiming billions of pixels ----------------------


def _png_bomb():
    return _png(100_000, 100_000, b"\0" * 1000)


def _jpeg_bomb():
    """A real JPEG whose frame header (SOF0) claims 65000x65000."""
    data = bytearray(_rgb_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)


def _gif_bomb():
    """A real GIF whose logical screen and image descriptor claim 65535x65535."""
    data = bytearray(_pillow(_pixels((4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    descriptor = data.index(b"\x2c")
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def _tiff_bomb(bits, size=100_000, samples=1):
    """A baseline TIFF claiming ``size`` x ``size`` ``bits``-bit gray (or ``samples`` per
    pixel), with one 16-byte strip."""
    entries = [
        (256, 4, size),  # ImageWidth, LONG
        (257, 4, size),  # ImageLength
        (258, 3, bits),  # BitsPerSample, SHORT
        (259, 3, 1),  # no compression
        (262, 3, 1),  # BlackIsZero
        (273, 4, 8 + 2 + 12 * 9 + 4),  # StripOffsets: right after the IFD
        (277, 3, samples),  # SamplesPerPixel
        (278, 4, size),  # RowsPerStrip
        (279, 4, 16),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 16


def _bmp_bomb():
    """A BMP info header claiming 100000x100000 at 24 bits, and no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, 100_000, 100_000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def _webp_bomb():
    """A lossless WebP whose VP8L header claims 16383x16383 (WebP's largest)."""
    data = bytearray(_pillow(np.zeros((4, 4, 3), np.uint8), "WEBP", lossless=True))
    start = data.index(b"VP8L") + 9  # after the chunk header and the signature byte
    bits = int.from_bytes(data[start : start + 4], "little")
    bits = (bits & ~((1 << 28) - 1)) | 16382 | (16382 << 14)
    data[start : start + 4] = bits.to_bytes(4, "little")
    return bytes(data)


def _apng_frame_bomb():
    """A 2x2 APNG whose acTL chunk claims 2**31 - 1 frames."""
    actl = _chunk(b"acTL", struct.pack(">II", 2**31 - 1, 0))
    return _png(2, 2, b"\0\0\0" * 2, extra=[actl])


def _ztxt_bomb():
    """A 2x2 PNG with a zTXt chunk inflating to 64 MB (Pillow's limit per chunk is 1 MB)."""
    text = b"Comment\0\0" + zlib.compress(b"\0" * (64 << 20), 9)
    return _png(2, 2, b"\0\0\0" * 2, extra=[_chunk(b"zTXt", text)])


# --- the corpus -------------------------------------------------------------------------

CORPUS = (
    # damaged
    Case("empty.png", lambda: b"", "damaged", "empty file (0 bytes)"),
    Case("text.png", lambda: b"hello, not an image\n", "damaged", "unknown or damaged format"),
    Case("truncated.png", _truncated_png, "damaged", "truncated inside the IDAT chunk",
         lenient="ok", shape=(24, 16, 3), bits=8, note="decoded what could be read"),
    Case("header_only.png", lambda: _rgb_png()[:33], "damaged",
         "truncated at byte 33, before the IEND chunk",
         lenient="unreadable even with --allow-truncated"),
    Case("bad_crc.png", _bad_crc_png, "damaged", "bad CRC in the IDAT chunk",
         lenient="ok", shape=(24, 16, 3), bits=8, note="bad CRC in the IDAT chunk"),
    Case("bad_zlib.png", _bad_zlib_png, "damaged", "damaged PNG file: broken data stream",
         lenient="ok", shape=(24, 16, 3), bits=8, note="broken data stream"),
    Case("truncated.jpg", _truncated_jpeg, "damaged", "damaged JPEG file: image file is truncated",
         lenient="ok", shape=(64, 48, 3), bits=8, note="image file is truncated"),
    Case("header_only.jpg", _jpeg_header_only, "damaged", "damaged JPEG file",
         lenient="unreadable even with --allow-truncated"),
    Case("truncated.gif", _truncated_gif, "damaged", "damaged GIF file: image file is truncated",
         lenient="ok", shape=(48, 40, 3), bits=8, note="image file is truncated"),
    Case("truncated16.tif", _truncated_tiff16, "damaged", "damaged TIFF file: failed to read",
         lenient="ok", shape=(32, 24, 3), bits=16, note="the rest is 0"),
    Case("truncated.npy", lambda: _npy(np.ones((6, 5), np.float32))[:-8], "damaged",
         "truncated .npy: the header promises 120 bytes", lenient="ok", shape=(6, 5), bits=32,
         note="missing values are 0"),
    Case("garbled.npy", lambda: b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4}  \n", "damaged",
         "damaged .npy header"),
    Case("pickle.npy", _npy_object, "damaged",
         "expected a non-empty real (H, W) or (H, W, C) array"),
    Case("not_numpy.npy", lambda: b"P6\n2 2\n255\n" + bytes(12), "damaged", "not a .npy array"),
    # header bombs
    Case("bomb.png", _png_bomb, "bomb", f"100000x100000 = 10,000,000,000 pixels, {LIMIT}"),
    Case("bomb.jpg", _jpeg_bomb, "bomb", f"65000x65000 = 4,225,000,000 pixels, {LIMIT}"),
    Case("bomb.gif", _gif_bomb, "bomb", f"65535x65535 = 4,294,836,225 pixels, {LIMIT}"),
    Case("bomb16.tif", lambda: _tiff_bomb(16), "bomb",
         f"100000x100000 = 10,000,000,000 pixels, {LIMIT}", command=STRIP_BOMB),
    Case("bomb8.tif", lambda: _tiff_bomb(8), "bomb",
         f"100000x100000 = 10,000,000,000 pixels, {LIMIT}", command=STRIP_BOMB),
    Case("bomb_samples.tif", lambda: _tiff_bomb(16, 10_000, 4000), "bomb",
         "10000x10000 with 4,000 channels = 400,000,000,000 values, over the limit of "
         "1,000,000,000", command=(WIDE_BAND, WIDE_BAND)),
    Case("bomb.bmp", _bmp_bomb, "bomb", f"100000x100000 = 10,000,000,000 pixels, {LIMIT}"),
    Case("bomb.webp", _webp_bomb, "bomb", f"16383x16383 = 268,402,689 pixels, {LIMIT}"),
    Case("bomb.npy", lambda: _npy_header((100_000, 100_000)), "bomb",
         f"100000x100000 = 10,000,000,000 pixels, {LIMIT}",
         command=("the header promises 40,000,000,000 bytes", NOT_PADDED)),
    Case("bomb_channels.npy", lambda: _npy_header((10, 10, 10**9)), "bomb",
         "10x10 with 1,000,000,000 channels = 100,000,000,000 values, over the limit",
         command=("the header promises 400,000,000,000 bytes", NOT_PADDED)),
    Case("bomb_data.npy", lambda: _npy_header((100, 100, 100)), "bomb",
         "truncated .npy: the header promises 4,000,000 bytes",
         lenient="less than half of it is there, so it is not padded"),
    Case("bomb_ztxt.png", _ztxt_bomb, "bomb", "PNG text chunks over Pillow's limits"),
    # the first frame is fine; `--frames all` meets the frame limit (test_corpus checks it)
    Case("bomb_frames.png", _apng_frame_bomb, "bomb", shape=(2, 2), bits=8),
    # unusual but valid
    Case("gray.png", _gray_png, "unusual", shape=(24, 16), bits=8),
    Case("png_named.jpg", _rgb_png, "format", shape=(24, 16, 3), bits=8),
    Case("jpeg_named.png", _rgb_jpeg, "format", shape=(24, 16, 3), bits=8),
    Case("tiff16_named.png", _tiff16_rgb, "format", shape=(9, 7, 3), bits=16),
    Case("rgb16.tif", _tiff16_rgb, "unusual", shape=(9, 7, 3), bits=16),
    Case("float.tif", _float_tiff, "unusual", shape=(6, 5), bits=32),
    Case("float_nan.tif", _float_tiff_with_nan, "unusual", shape=(6, 5), bits=32, note=NAN_NOTE),
    Case("nan.npy", _npy_with_nan, "unusual", shape=(4, 5, 2), bits=32, note=NAN_NOTE),
    Case("pages16.tif", _multipage_tiff16, "unusual", shape=(5, 4), bits=16, frames=3),
    Case("rotated16.tif", _rotated_tiff16, "unusual", shape=(10, 4), bits=16),
    Case("exif_rotated.jpg", _exif_rotated_jpeg, "unusual", shape=(20, 10, 3), bits=8),
    Case("animated.gif", _animated_gif, "unusual", shape=(10, 12, 3), bits=8, frames=3),
    Case("animated.png", _apng, "unusual", shape=(6, 5, 3), bits=8, frames=2),
    Case("cmyk.jpg", _cmyk_jpeg, "unusual", shape=(4, 6, 3), bits=8),
    Case("cmyk.tif", _cmyk_tiff, "unusual", shape=(4, 6, 3), bits=8),
    Case("one_bit.png", _one_bit_png, "unusual", shape=(7, 7), bits=8),
    Case("palette.png", _palette_png, "unusual", shape=(8, 9, 3), bits=8),
    Case("palette_alpha.png", lambda: _palette_png(True), "unusual", shape=(8, 9, 3), bits=8),
    Case("gray_alpha.png", _gray_alpha_png, "unusual", shape=(5, 6), bits=8),
    Case("rgba16.png", _rgba16_png, "unusual", shape=(5, 6, 3), bits=16),
    Case("one.png", lambda: _pillow(np.full((1, 1), 200, np.uint8), "PNG"), "unusual",
         shape=(1, 1), bits=8),
    Case("row.png", lambda: _pillow(_pixels((1, 17)), "PNG"), "unusual", shape=(1, 17), bits=8),
    Case("column.bmp", lambda: _pillow(_pixels((13, 1, 3)), "BMP"), "unusual",
         shape=(13, 1, 3), bits=8),
    Case("row16.tif", lambda: _tiff(_pixels((1, 9), np.uint16)), "unusual", shape=(1, 9), bits=16),
    # smaller than the kernel at dilation 8 (17x17): fine in 'same' mode, refused in 'valid'
    Case("tiny.webp", lambda: _pillow(_pixels((3, 3, 3)), "WEBP", lossless=True), "unusual",
         shape=(3, 3, 3), bits=8),
)  # fmt: skip


def make_corpus(folder):
    """Write every corpus file into ``folder`` (created); return the cases."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for case in CORPUS:
        (folder / case.name).write_bytes(case.build())
    return CORPUS


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python tests/make_corpus.py FOLDER", file=sys.stderr)
        return 2
    cases = make_corpus(args[0])
    kinds = {}
    for case in cases:
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    print(f"wrote {len(cases)} files to {args[0]}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
