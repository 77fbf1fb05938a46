"""PNG files written fast: our own encoder, deflating blocks on every core.

Pillow cannot write 16-bit colour, and its encoder runs on one core; this one writes
8- and 16-bit gray, gray+alpha, RGB and RGBA, and is the only PNG writer of dilcli.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from dilcli.io.atomic import atomic_write


def save_pixels(path, pixels, *, compression=1):
    """Write uint8/uint16 pixels ``(H, W)`` or ``(H, W, 1..4)`` as PNG, atomically.

    ``compression`` is zlib's level, 0-9: 1 is several times faster than 6 for files a
    few percent larger.
    """
    with atomic_write(path) as handle:
        write_png(handle, pixels, compression)


def encode_png(pixels, compression=1):
    """PNG bytes of ``pixels``; see :func:`write_png`."""
    buffer = io.BytesIO()
    write_png(buffer, pixels, compression)
    return buffer.getvalue()


PNG_BLOCK_BYTES = 1 << 20
_ZLIB_HEADERS = {0: b"\x78\x01", 1: b"\x78\x01", 2: b"\x78\x5e", 6: b"\x78\x9c", 7: b"\x78\xda"}


def write_png(handle, pixels, compression=1):
    """Write uint8/uint16 gray, gray+alpha, RGB or RGBA ``pixels`` as a PNG to ``handle``.

    Rows use filter type 0. The zlib stream is deflated in blocks of about 1 MB on all
    cores, as pigz does: each block but the last ends on a byte boundary (a sync
    flush), so the blocks' raw deflate data concatenate into one valid stream, and
    their Adler-32 checksums combine into the stream's. Each block is an IDAT chunk.
    (Pillow cannot write 16-bit colour, and its encoder runs on one core.)
    """
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    depth = 8 if pixels.dtype == np.uint8 else 16
    rows = np.ascontiguousarray(pixels, dtype=">u2" if depth == 16 else np.uint8)
    raw = rows.reshape(height, -1).view(np.uint8)
    per_block = max(1, PNG_BLOCK_BYTES // (raw.shape[1] + 1))
    starts = list(range(0, height, per_block))

    def deflate(start):
        block = np.empty((min(per_block, height - start), raw.shape[1] + 1), np.uint8)
        block[:, 0] = 0  # filter type 0: None
        block[:, 1:] = raw[start : start + len(block)]
        compressor = zlib.compressobj(compression, zlib.DEFLATED, -15)
        last = start == starts[-1]
        data = compressor.compress(block) + compressor.flush(
            zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
        )
        return data, zlib.adler32(block), block.size

    def chunk(kind, data):
        handle.write(struct.pack(">I", len(data)) + kind)
        handle.write(data)
        handle.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

    handle.write(b"\x89PNG\r\n\x1a\n")
    chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    header = _ZLIB_HEADERS[max(k for k in _ZLIB_HEADERS if k <= compression)]
    checksum = 1
    from dilcli.core.parallel import parallel_map

    for number, (data, adler, size) in enumerate(parallel_map(deflate, starts)):
        chunk(b"IDAT", header + data if number == 0 else data)
        checksum = _adler32_combine(checksum, adler, size)
    chunk(b"IDAT", struct.pack(">I", checksum))
    chunk(b"IEND", b"")


def _adler32_combine(first, second, second_length):
    """Adler-32 of two byte strings joined, from theirs (zlib's adler32_combine)."""
    base = 65521
    remainder = second_length % base
    low = (first & 0xFFFF) + (second & 0xFFFF) + base - 1
    high = remainder * (first & 0xFFFF) % base + (first >> 16) + (second >> 16) + base - remainder
    return (low % base) | ((high % base) << 16)
