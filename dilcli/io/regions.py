"""Images read and written in parts: any band of rows of an input, outputs band by band.

Images too large to decode whole (issue 13) are computed in bands of full-width rows,
top to bottom. This module is their input and output:

- :func:`open_reader` gives a :class:`RegionReader` for the formats that can be read in
  parts: TIFF and BigTIFF (tiled or in strips, any compression tifffile decodes),
  ``.npy`` arrays and Zarr / OME-Zarr stores. ``reader.read(r0, r1)`` holds exactly the
  values ``load_image(path).data[r0:r1]`` holds, decoding only the tiles or strips the
  band meets (the last band's tiles are kept, so overlapping halos decode once). It
  returns None for files that must be decoded whole (PNG, JPEG, GIF, WebP, BMP), and
  for the rare layouts whose whole-image decoding it cannot reproduce exactly (see
  :func:`open_reader`): callers then use :func:`dilcli.io.images.load_image`.
- :func:`open_writer` gives a :class:`RegionWriter` that takes bands in order and
  writes tiled BigTIFF, ``.npy``, PNG (rows streamed into the encoder's IDAT blocks:
  byte for byte the PNG of the whole image) or Zarr. Nothing appears under the final
  name until :meth:`RegionWriter.commit`: the data goes to a temporary beside it
  (:mod:`dilcli.io.atomic`, under the run's commit guard) and is renamed into place
  when complete.

Memory: a reader holds the tiles (or strips) of one band, as stored, besides the band
it returns (:meth:`RegionReader.working_bytes`); a writer holds, besides the band it is
given, one PNG block (about 1 MB), or a few rows of tiles (TIFF: the row being filled,
two in the compressor's queue and one being compressed; Zarr: the row being filled).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from dilcli.core.parallel import parallel_map, threads
from dilcli.io import atomic
from dilcli.io.images import (
    _NOT_PADDED,
    _PAD_LIMIT,
    _UNREADABLE,
    TRUNCATED_HINT,
    ImageError,
    _check_pixels,
    _guarded,
    _read_head,
    _reason,
    _tiff_is_exact,
    _tiff_sizes,
    _tifffile_log,
    check_npy_image,
    sniff,
)
from dilcli.vocab import DEFAULT_MAX_PIXELS

# A tile or strip that decodes to more than this is not read in parts (a file of one
# huge compressed strip must be decoded whole); uncompressed strips are read by rows.
MAX_SEGMENT_BYTES = 256 * 2**20
# TIFF compressions whose 8-bit files decode here exactly as Pillow decodes them (the
# whole-image path reads 8-bit TIFFs with Pillow): none, LZW, JPEG, deflate (both
# codes), PackBits, LZMA, zstd.
_PILLOW_EXACT_COMPRESSIONS = frozenset({1, 5, 7, 8, 32946, 32773, 34925, 50000})
WRITER_FORMATS = ("tiff", "npy", "png", "zarr")
# Tiles of a TIFF output queued for, and compressed at once by, tifffile's writer.
TIFF_TILES_IN_FLIGHT = 32
# The side of a TIFF output's tiles and of a Zarr output's chunks (rows and columns).
TILE = 256
# The files that make a folder a Zarr store (v3; v2 array; v2 group).
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup")
TIFF_COMPRESSIONS = {"deflate": "zlib", "zstd": "zstd", "lzw": "lzw", "none": None}


def open_reader(path, *, max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False):
    """A :class:`RegionReader` of frame 0 of ``path``, or None if it must be decoded whole.

    ``path`` is a TIFF/BigTIFF, an ``.npy`` array or a Zarr / OME-Zarr store (a
    folder; OME-Zarr: the full-resolution array of its first multiscale). The format
    is recognised from the file's first bytes. ``max_pixels`` (0: no limit) is checked
    from the header, with :func:`~dilcli.io.images.load_image`'s message, before any
    pixel is decoded; tile sizes and counts are checked against the image's.

    None (read the file whole, with :func:`~dilcli.io.images.load_image`) for PNG,
    JPEG, GIF, WebP and BMP, and for files read in parts only at the cost of reading
    them whole or that the whole-image path decodes in ways not reproduced here:
    8-bit TIFFs that are CMYK, associated alpha, signed, 2-7 bits a sample, gray
    and alpha in separate planes, or compressed otherwise than by none, LZW, JPEG, deflate,
    PackBits, LZMA or zstd; TIFFs whose orientation tag swaps rows and columns unless
    tiled; strips that decode to more than :data:`MAX_SEGMENT_BYTES` (unless
    uncompressed, then read by rows); TIFFs tifffile cannot parse (Pillow may read
    them); Fortran-ordered ``.npy``.

    Raises :class:`~dilcli.io.images.ImageError` (one line) for a missing, special,
    unknown or damaged file, an image over ``max_pixels``, or a header whose sizes do
    not hold together. Truncated data is reported when the band that needs it is
    read (with ``allow_truncated``, the missing bytes are zeros, as the whole-image
    path does, and :attr:`RegionReader.notes` says so).
    """
    path = Path(path)
    if path.is_dir():
        return _ZarrReader.open(path, max_pixels=max_pixels)
    kind = sniff(_read_head(path))
    options = dict(max_pixels=max_pixels, allow_truncated=allow_truncated)
    if kind == "TIFF":
        return _TiffReader.open(path, **options)
    if kind == "NPY":
        return _NpyReader.open(path, **options)
    return None


def is_zarr_store(path):
    """Whether the folder ``path`` holds a Zarr store's metadata (an image input)."""
    return any(os.path.isfile(os.path.join(path, name)) for name in ZARR_METADATA)


class RegionReader:
    """Bands of an image as float32, exactly as the whole-image decoder gives them.

    Attributes
    ----------
    shape : tuple
        ``(H, W)`` or ``(H, W, C)``: the shape of ``load_image(path).data``.
    dtype : numpy.dtype
        The samples as stored in the file.
    bits : int
        ``load_image(path).bits``: 8 or 16 for integer images, 32 for float data.
    has_alpha : bool
        Whether ``load_image(path).alpha`` is an array (shape ``(H, W)``).
    notes : tuple of str
        What ``load_image(path).notes`` would say of the rows read so far (NaN
        replaced, truncated data decoded as zeros).
    frames : int
        Frames (TIFF pages) in the file; the reader reads the first.
    """

    format = ""
    shape: tuple
    dtype: np.dtype
    bits: int
    has_alpha = False
    frames = 1

    def __init__(self):
        self._notes = []
        self._nonfinite = 0
        self._counted_to = 0  # rows [0, this) have had their NaN counted

    @property
    def notes(self):
        notes = list(self._notes)
        if self._nonfinite:
            notes.append(f"{self._nonfinite:,} NaN or infinite value(s) replaced by 0")
        return tuple(dict.fromkeys(notes))

    def read(self, r0, r1, c0=0, c1=None):
        """Rows ``r0:r1`` and columns ``c0:c1`` (None: to the end) as float32:
        ``load_image(path).data[r0:r1, c0:c1]`` exactly."""
        return self.read_with_alpha(r0, r1, c0, c1)[0]

    def read_alpha(self, r0, r1, c0=0, c1=None):
        """``load_image(path).alpha[r0:r1, c0:c1]`` (float32), or None without alpha."""
        return self.read_with_alpha(r0, r1, c0, c1)[1] if self.has_alpha else None

    def read_with_alpha(self, r0, r1, c0=0, c1=None):
        """``(data, alpha)`` of a region in one decoding; alpha is None without alpha.

        TIFF tiles decode on :func:`dilcli.core.parallel.parallel_map`'s shared pool.
        """
        height, width = self.shape[:2]
        c1 = width if c1 is None else c1
        if not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
            raise ValueError(
                f"region rows {r0}:{r1}, columns {c0}:{c1} is empty or outside the "
                f"image of {height} x {width}"
            )
        data, alpha = self._read(r0, r1, c0, c1)
        if self.dtype.kind == "f":
            self._replace_nonfinite(
                [data] if alpha is None else [data, alpha], r0, c1 - c0 == width
            )
        return data, alpha

    def working_bytes(self, rows):
        """Bytes this reader holds (decoded tiles, its own buffers) to give a band of
        ``rows`` full-width rows, beside the float32 band it returns."""
        return 0

    def _read(self, r0, r1, c0, c1):  # pragma: no cover - every reader has its own
        raise NotImplementedError

    def _replace_nonfinite(self, arrays, r0, full_width):
        """NaN and infinities become 0 (as load_image does, alpha included); those of
        full-width rows not read before are counted for :attr:`notes`."""
        rows = len(arrays[0])
        skip = max(0, min(rows, self._counted_to - r0))
        for array in arrays:
            bad = ~np.isfinite(array)
            if bad.any():
                if full_width:
                    self._nonfinite += int(np.count_nonzero(bad[skip:]))
                array[bad] = 0
        if full_width:
            self._counted_to = max(self._counted_to, r0 + rows)

    def close(self):
        """Release the file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- TIFF ---------------------------------------------------------------------------


class _TiffReader(RegionReader):
    """Tiles or strips of a TIFF page decoded by tifffile, one band's worth at a time.

    Values follow the whole-image path's two routes: TIFFs of more than 8 bits a
    sample go through tifffile there too (:func:`dilcli.io.images._from_tiff_array`),
    8-bit ones through Pillow, whose conversions (inverted gray, palettes, an extra
    sample that is not alpha) are reproduced for the layouts Pillow reads correctly.
    """

    format = "TIFF"

    @classmethod
    def open(cls, path, *, max_pixels, allow_truncated):
        import tifffile

        exact = _tiff_is_exact(path)  # the whole-image path's choice of decoder
        with _tifffile_log():
            try:
                tif = tifffile.TiffFile(path)
            except Exception:
                return None  # load_image tries Pillow, and says what is wrong
        readable = False
        try:
            with _tifffile_log():
                page = _guarded(lambda: tif.pages.first.aspage(), "TIFF")
                width, height, samples, depth = _tiff_sizes(page)
                _check_pixels(width, height, max_pixels, samples)
                if depth > 1:
                    raise ImageError("volumetric TIFF pages (ImageDepth > 1) are not supported")
                values = _TiffValues.of(page, exact)
                if values is None:
                    return None
                reader = cls(path, tif, page, values, allow_truncated)
                readable = reader._readable()
                if readable:
                    reader.frames = _page_count(tif)
                return reader if readable else None
        finally:
            if not readable:
                tif.close()

    def __init__(self, path, tif, page, values, allow_truncated):
        super().__init__()
        self._path, self._tif, self._page, self._values = path, tif, page, values
        self._allow_truncated = allow_truncated
        self.dtype = np.dtype(page.dtype)
        self.bits = values.bits
        self.has_alpha = values.alpha is not None
        self._stored_shape = (page.imagelength, page.imagewidth)
        self._orientation = values.orientation
        height, width = self._stored_shape
        if self._orientation in (5, 6, 7, 8):
            height, width = width, height
        channels = values.channels
        self.shape = (height, width) if channels == 1 else (height, width, channels)
        self._samples = page.samplesperpixel
        self._planes = self._samples if page.planarconfig == 2 else 1
        self._contig = self._samples if self._planes == 1 else 1
        self._tiled = page.is_tiled
        stored_h, stored_w = self._stored_shape
        if self._tiled:
            self._seg_h, self._seg_w = page.tilelength, page.tilewidth
        else:
            rows = page.rowsperstrip or stored_h
            self._seg_h, self._seg_w = min(int(rows), stored_h), stored_w
        self._file_dtype = np.dtype(tif.byteorder + self.dtype.char)
        self._fd = None
        self._cache = {}
        self._file_size = os.path.getsize(path)

    def _readable(self):
        """Check the segment layout; False when it cannot be read in parts."""
        page = self._page
        stored_h, stored_w = self._stored_shape
        seg_h, seg_w = self._seg_h, self._seg_w
        if seg_h < 1 or seg_w < 1:
            raise ImageError(f"damaged TIFF file: tiles of {seg_w} x {seg_h} pixels")
        # Tiles larger than the image (rounded up to 16, as TIFF 6.0 wants tiles) are
        # written for small images, but never by more than a common tile side.
        if self._tiled and (seg_h > _tile_limit(stored_h) or seg_w > _tile_limit(stored_w)):
            raise ImageError(
                f"damaged TIFF file: tiles of {seg_w} x {seg_h} pixels for an image of "
                f"{stored_w} x {stored_h}"
            )
        self._down = -(-stored_h // seg_h)
        self._across = -(-stored_w // seg_w)
        expected = self._planes * self._down * self._across
        offsets, counts = page.dataoffsets, page.databytecounts
        if len(offsets) != expected or len(counts) != expected:
            kind = "tile" if self._tiled else "strip"
            raise ImageError(
                f"damaged TIFF file: {len(offsets):,} {kind} offsets and {len(counts):,} "
                f"byte counts for {expected:,} {kind}s"
            )
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._counts = np.asarray(counts, dtype=np.int64)
        ends = self._offsets + self._counts
        self._missing = int(ends.max(initial=0)) - self._file_size
        self._by_rows = (
            not self._tiled
            and page.compression == 1
            and page.predictor == 1
            and page.fillorder == 1
            and page.bitspersample == 8 * self.dtype.itemsize
            and self.dtype.kind != "b"
        )
        if self._orientation in (5, 6, 7, 8) and not self._tiled:
            return False  # a band of rows would be a band of columns of every strip
        segment = seg_h * seg_w * self._contig * self.dtype.itemsize
        if segment > MAX_SEGMENT_BYTES and not self._by_rows:
            return False
        if not self._by_rows:  # (rows of uncompressed strips are read as they are needed)
            self._check_byte_counts(segment)
        import tifffile

        if page.compression != 1 and page.compression not in tifffile.TIFF.DECOMPRESSORS:
            return False  # a codec this installation lacks: load_image says which
        self._fd = os.open(self._path, os.O_RDONLY)
        return True

    def working_bytes(self, rows):
        stored_w = self._stored_shape[1]
        if self._orientation in (5, 6, 7, 8):  # a band of rows is a band of stored columns
            tiles = (-(-rows // self._seg_w) + 1) * self._down * self._planes
        elif self._by_rows:
            return rows * stored_w * self._samples * self.dtype.itemsize
        else:
            tiles = (-(-rows // self._seg_h) + 1) * self._across * self._planes
        return tiles * self._seg_h * self._seg_w * self._contig * self.dtype.itemsize

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._cache = {}
        self._tif.close()

    def _read(self, r0, r1, c0, c1):
        # Where the region lies in the stored image (the orientation tag, as _orient).
        orientation = self._orientation
        transposed = orientation in (5, 6, 7, 8)
        flip_rows = orientation in (3, 4, 7, 8)
        flip_columns = orientation in (2, 3, 6, 7)
        height, width = self.shape[:2]
        rows = (height - r1, height - r0) if flip_rows else (r0, r1)
        columns = (width - c1, width - c0) if flip_columns else (c0, c1)
        if transposed:
            rows, columns = columns, rows
        raw = self._stored(*rows, *columns)
        if transposed:
            raw = raw.swapaxes(0, 1)
        raw = raw[:: -1 if flip_rows else 1, :: -1 if flip_columns else 1]
        return self._values.convert(raw, self._notes)

    def _stored(self, r0, r1, c0, c1):
        """Stored samples ``(r1 - r0, c1 - c0, samples)`` of the page, as decoded."""
        out = np.empty((r1 - r0, c1 - c0, self._samples), self.dtype)
        if self._by_rows:
            for plane in range(self._planes):
                self._rows_into(out, plane, r0, r1, c0, c1)
            return out
        seg_h, seg_w = self._seg_h, self._seg_w
        keys = [
            (plane, ty, tx)
            for plane in range(self._planes)
            for ty in range(r0 // seg_h, (r1 - 1) // seg_h + 1)
            for tx in range(c0 // seg_w, (c1 - 1) // seg_w + 1)
        ]
        # Only the last band's tiles that this band needs are kept: at most one band of
        # tiles is held, plus the region returned.
        cache = {key: self._cache[key] for key in keys if key in self._cache}
        self._cache = {}
        missing = [key for key in keys if key not in cache]
        with _tifffile_log():  # the codecs release the GIL: tiles decode on every core
            cache.update(zip(missing, parallel_map(lambda key: self._segment(*key), missing)))
        for (plane, ty, tx), tile in cache.items():
            top, left = ty * seg_h, tx * seg_w
            y0, y1 = max(r0, top), min(r1, top + seg_h)
            x0, x1 = max(c0, left), min(c1, left + seg_w)
            where = slice(plane, plane + 1) if self._planes > 1 else slice(None)
            out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0, where] = tile[
                y0 - top : y1 - top, x0 - left : x1 - left
            ]
        self._cache = cache  # the tiles of this band only: memory stays one band's
        return out

    def _index(self, plane, ty, tx):
        return (plane * self._down + ty) * self._across + tx

    def _check_byte_counts(self, segment):
        """An ImageError for a tile (or strip) whose byte count is far over the bytes of
        its pixels (``segment``): compressed data is never much larger than its pixels,
        and a count of gigabytes would otherwise be read into memory, tile by tile."""
        most = 2 * segment + 2**20
        over = np.flatnonzero(self._counts > most)
        if over.size:
            index = int(over[0])
            kind = "tile" if self._tiled else "strip"
            raise ImageError(
                f"damaged TIFF file: {kind} {index} claims {int(self._counts[index]):,} bytes "
                f"for {segment:,} bytes of pixels"
            )

    def _bytes(self, index, start=0, length=None):
        """Bytes of segment ``index`` (from ``start``, ``length`` of them), short if the
        file is; None for a segment of no bytes (tifffile fills those). Never more than
        the file holds from there: a byte count that lies costs no memory."""
        count = int(self._counts[index])
        if count == 0:
            return None
        offset = int(self._offsets[index]) + start
        length = count - start if length is None else length
        length = max(0, min(length, self._file_size - offset))
        return os.pread(self._fd, length, offset)

    def _truncated(self, reason):
        """A segment that fails: an error, or (``allow_truncated``) pad it with zeros."""
        reason = f"damaged TIFF file: {reason}"
        if not self._allow_truncated:
            raise ImageError(reason + TRUNCATED_HINT)
        if self._missing <= 0:
            raise ImageError(reason + _UNREADABLE)
        if self._missing > max(self._file_size, _PAD_LIMIT):
            raise ImageError(f"{reason}; {_NOT_PADDED}")
        if not self._notes:  # the first damage, as load_image reports it
            self._notes.append(f"{reason}; decoded what could be read, the rest is 0")

    def _segment(self, plane, ty, tx):
        """Tile or strip ``(plane, ty, tx)`` decoded: ``(rows, columns, contig samples)``,
        cut to the image."""
        index = self._index(plane, ty, tx)
        stored_h, stored_w = self._stored_shape
        rows = min(self._seg_h, stored_h - ty * self._seg_h)
        columns = min(self._seg_w, stored_w - tx * self._seg_w)
        data = self._bytes(index)
        page = self._page
        try:
            array = self._decode(data, index)
        except MemoryError:
            raise ImageError("not enough memory to decode") from None
        except ImageError:
            raise
        except Exception as error:
            self._truncated(_reason(error))
            padded = data + bytes(int(self._counts[index]) - len(data))
            try:
                array = self._decode(padded, index)
            except Exception:
                raise ImageError(f"damaged TIFF file: {_reason(error)}{_UNREADABLE}") from None
        if array is None:
            return np.full((rows, columns, self._contig), page.nodata, self.dtype)
        return array[0, :rows, :columns]

    def _decode(self, data, index):
        if data is None:
            return None
        page = self._page
        array = page.decode(data, index, jpegtables=page.jpegtables)[0]
        if array is None:
            raise ValueError("empty tile")
        if array.ndim != 4 or array.shape[3] != self._contig:
            raise ValueError(f"a tile of shape {array.shape}")
        return array

    def _short_strip(self, index, strip, plane):
        """Why uncompressed strip ``index`` gives fewer bytes than its rows need."""
        stored_h, stored_w = self._stored_shape
        rows = min(self._seg_h, stored_h - strip * self._seg_h)
        needed = rows * stored_w * self._contig * self.dtype.itemsize
        count, end = int(self._counts[index]), int(self._offsets[index] + self._counts[index])
        if count < needed:  # a byte count that lies (or a header that claims too much)
            return f"strip {index} holds {count:,} bytes, its {rows:,} rows need {needed:,}"
        return (
            f"strip {index} is truncated: it ends at byte {end:,}, the file has {self._file_size:,}"
        )

    def _rows_into(self, out, plane, r0, r1, c0, c1):
        """Rows of an uncompressed strip file, read directly (the strips may be huge)."""
        stored_w = self._stored_shape[1]
        row_bytes = stored_w * self._contig * self.dtype.itemsize
        where = slice(plane, plane + 1) if self._planes > 1 else slice(None)
        row = r0
        while row < r1:
            strip = row // self._seg_h
            top = strip * self._seg_h
            end = min(r1, top + self._seg_h)
            index = self._index(plane, strip, 0)
            wanted, start = (end - row) * row_bytes, (row - top) * row_bytes
            data = self._bytes(index, start, max(0, min(wanted, int(self._counts[index]) - start)))
            if data is None:
                out[row - r0 : end - r0, :, where] = self._page.nodata
            else:
                if len(data) < wanted:
                    self._truncated(self._short_strip(index, strip, plane))
                    data = data + bytes(wanted - len(data))
                values = np.frombuffer(data, self._file_dtype).reshape(
                    end - row, stored_w, self._contig
                )
                out[row - r0 : end - r0, :, where] = values[:, c0:c1]
            row = end


def _page_count(tif):
    """Pages of an open TIFF, for the note on a file reduced to its first; 1 if the
    chain of pages cannot be followed (the first page reads, which is what counts)."""
    try:
        return max(1, len(tif.pages))
    except Exception:
        return 1


def _tile_limit(size):
    return max(4096, -(-size // 16) * 16)


class _TiffValues:
    """How stored TIFF samples become ``load_image``'s data and alpha (both routes)."""

    def __init__(self, **fields):
        self.lut = None  # palette: index -> RGB (uint8), as Pillow builds it
        self.invert = None  # "pillow": 255 - v before scaling; "tiff": 1 - v after
        self.bilevel = False
        self.finite = False
        self.scale = None
        self.alpha = None  # index of the alpha sample
        self.keep = 1  # leading samples that are the image's channels
        self.__dict__.update(fields)

    @property
    def channels(self):
        return 3 if self.lut is not None else self.keep

    @classmethod
    def of(cls, page, exact):
        """The conversion of ``page``'s samples, or None if not reproduced exactly."""
        dtype = page.dtype
        if dtype is None:
            return None
        samples = page.samplesperpixel
        extra = tuple(page.extrasamples or ())
        orientation = page.tags.valueof(274, 1)
        if orientation not in range(1, 9):
            orientation = 1
        if exact:
            return cls._exact(page, dtype, samples, extra, orientation)
        return cls._pillow(page, dtype, samples, extra, orientation)

    @classmethod
    def _exact(cls, page, dtype, samples, extra, orientation):
        """As :func:`dilcli.io.images._from_tiff_array` converts tifffile's arrays."""
        axes = page.axes.replace("S", "")
        if sorted(axes) != ["X", "Y"]:
            return None
        kind, size = dtype.kind, dtype.itemsize
        fields = dict(orientation=orientation, keep=samples)
        if kind == "u":
            fields.update(bits=8 if size == 1 else 16, scale=np.float32(1 / (2 ** (8 * size) - 1)))
            fields["invert"] = "tiff" if page.photometric == 0 else None
        elif kind in "fi":
            fields.update(bits=32, finite=True)
        else:
            return None
        if samples in (2, 4) and (not extra or extra[-1] in (1, 2)):
            fields.update(alpha=samples - 1, keep=samples - 1)
        return cls(**fields)

    @classmethod
    def _pillow(cls, page, dtype, samples, extra, orientation):
        """As Pillow decodes the 8-bit and bilevel TIFFs it reads correctly."""
        if page.compression not in _PILLOW_EXACT_COMPRESSIONS:
            return None
        photometric, bits = page.photometric, page.bitspersample
        fields = dict(orientation=orientation, bits=8, scale=np.float32(1 / 255.0))
        if dtype == np.bool_ and bits == 1 and samples == 1 and photometric in (0, 1):
            fields.update(bilevel=True, invert="pillow" if photometric == 0 else None)
            return cls(**fields)
        if dtype != np.uint8 or bits != 8:
            return None
        base = {0: 1, 1: 1, 2: 3, 3: 1, 6: 3}.get(photometric)
        if base is None or samples not in (base, base + 1):
            return None
        if page.planarconfig == 2 and base != 3:
            return None  # Pillow reads gray+alpha planes wrongly
        if photometric == 6 and page.compression != 7:
            return None  # YCbCr: only JPEG's (decoded to RGB alike); Pillow's own differs
        if photometric == 3:
            colormap = page.colormap
            if samples != 1 or colormap is None or np.shape(colormap) != (3, 256):
                return None
            fields["lut"] = np.ascontiguousarray((np.asarray(colormap) >> 8).T, dtype=np.uint8)
            return cls(**fields)
        fields["keep"] = base
        if photometric == 0:
            if samples != 1:
                return None  # Pillow does not open inverted gray with alpha
            fields["invert"] = "pillow"
        if samples == base + 1:
            if extra[-1:] == (2,):
                fields["alpha"] = base
            elif extra[-1:] != (0,):
                return None  # associated alpha: Pillow un-premultiplies
        return cls(**fields)

    def convert(self, raw, notes):
        """``(data, alpha)`` float32 of stored samples ``raw`` ``(h, w, samples)``."""
        if self.lut is not None:
            raw = self.lut[raw[..., 0]]
        elif self.bilevel:
            raw = raw.view(np.uint8) * np.uint8(255)
        if self.invert == "pillow":
            raw = np.uint8(255) - raw
        if self.finite:
            with np.errstate(over="ignore"):
                data = raw.astype(np.float32)
        else:
            data = raw.astype(np.float32)
        if self.scale is not None:
            data *= self.scale
        if self.invert == "tiff":
            data = np.float32(1) - data
        alpha = None if self.alpha is None else np.ascontiguousarray(data[..., self.alpha])
        data = data[..., : self.channels]
        data = data[..., 0] if data.shape[2] == 1 else data
        return np.ascontiguousarray(data), alpha


# --- .npy ---------------------------------------------------------------------------


class _NpyReader(RegionReader):
    """Rows of an ``.npy`` array read in place (``os.pread``): the header checked by
    :func:`dilcli.io.arrays.read_header` first, nothing ever unpickled.

    Not a memory map: mapped pages count in the process's resident memory until they
    are evicted, so mapping a large file would look like holding all of it.
    """

    format = "NPY"
    bits = 32

    @classmethod
    def open(cls, path, *, max_pixels, allow_truncated):
        from dilcli.io import arrays

        with open(path, "rb") as handle:
            try:
                shape, fortran_order, dtype = arrays.read_header(handle)
            except arrays.ArrayError as error:
                raise ImageError(str(error)) from None
            offset = handle.tell()
        check_npy_image(shape, dtype, max_pixels)
        if fortran_order:
            return None  # a band of rows is scattered over the whole file
        return cls(path, shape, dtype, offset, allow_truncated)

    def __init__(self, path, shape, dtype, offset, allow_truncated):
        from dilcli.io import arrays

        super().__init__()
        self.shape, self.dtype, self._offset = tuple(shape), dtype, offset
        self._row_bytes = arrays.data_bytes(shape[1:], dtype)
        size = self._row_bytes * shape[0]
        held = max(0, os.path.getsize(path) - offset)
        if held < size:
            message = (
                f"truncated .npy: the header promises {size:,} bytes of "
                f"{arrays.describe(shape, dtype)}, the file holds {held:,}"
            )
            if not allow_truncated:
                raise ImageError(message + TRUNCATED_HINT)
            if size - held > max(held, _PAD_LIMIT):
                raise ImageError(f"{message}; {_NOT_PADDED}")
            self._notes.append(f"{message}: missing values are 0")
        self._fd = os.open(path, os.O_RDONLY)

    def working_bytes(self, rows):
        return rows * self._row_bytes

    def _read(self, r0, r1, c0, c1):
        wanted = (r1 - r0) * self._row_bytes
        data = os.pread(self._fd, wanted, self._offset + r0 * self._row_bytes)
        if len(data) < wanted:  # a truncated file, accepted at opening
            data = data + bytes(wanted - len(data))
        rows = np.frombuffer(data, self.dtype).reshape((r1 - r0, *self.shape[1:]))
        with np.errstate(over="ignore"):  # float64 beyond float32's range: Inf, then 0
            return rows[:, c0:c1].astype(np.float32), None  # a copy: the bytes are read-only

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# --- Zarr / OME-Zarr -------------------------------------------------------------------


class _ZarrReader(RegionReader):
    """A Zarr array (v2 or v3), or the full-resolution level of an OME-Zarr image.

    Zarr has no whole-image decoder in dilcli to agree with; its values follow the
    TIFF rule: unsigned integers scaled to [0, 1] by their range (8-bit / 255, 16-bit
    / 65535), signed integers and floats as they are (NaN and infinities become 0).
    Axes: ``(y, x)``, ``(y, x, c)``, or OME-Zarr's named axes, where a channel axis
    becomes the last and time and z must have one plane.
    """

    format = "Zarr"

    @classmethod
    def open(cls, path, *, max_pixels):
        if not is_zarr_store(path):
            raise ImageError("is a folder, not an image (nor a Zarr store)")
        try:
            import zarr
        except ImportError:
            raise ImageError(
                "is a Zarr store: reading it needs zarr (pip install 'dilcli[zarr]')"
            ) from None
        try:
            node = zarr.open(store=str(path), mode="r")
            axes = None
            if not hasattr(node, "shape"):  # a group: OME-Zarr's multiscales
                attributes = dict(node.attrs)
                multiscales = attributes.get("ome", attributes).get("multiscales")
                if not multiscales:
                    raise ImageError("is a Zarr group without OME-Zarr multiscales")
                first = multiscales[0]
                axes = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", [])]
                node = node[first["datasets"][0]["path"]]
        except ImageError:
            raise
        except Exception as error:
            raise ImageError(f"damaged Zarr store: {_reason(error)}") from None
        return cls(node, axes, max_pixels)

    def __init__(self, array, axes, max_pixels):
        super().__init__()
        shape, dtype = tuple(int(n) for n in array.shape), np.dtype(array.dtype)
        if axes is None:
            axes = ["y", "x", "c"][: len(shape)] if len(shape) in (2, 3) else []
        axes = [str(a).lower() for a in axes]
        if len(axes) != len(shape) or "y" not in axes or "x" not in axes:
            raise ImageError(f"expected a (y, x) or (y, x, c) Zarr array, got shape {shape}")
        others = [a for a in axes if a not in ("y", "x", "c")]
        if any(shape[axes.index(a)] != 1 for a in others):
            raise ImageError(
                f"a Zarr image with axes {''.join(axes)} of shape {shape}: only one time "
                "point and one z plane are read"
            )
        if dtype.kind not in "biuf" or 0 in shape:
            raise ImageError(f"expected a non-empty real Zarr array, got {dtype} {shape}")
        height, width = shape[axes.index("y")], shape[axes.index("x")]
        channels = shape[axes.index("c")] if "c" in axes else 1
        _check_pixels(width, height, max_pixels, channels)
        self._array, self._axes = array, axes
        self.dtype = dtype
        self.shape = (height, width) if "c" not in axes else (height, width, channels)
        self._scale = None
        if dtype.kind == "u":
            self.bits = 8 if dtype.itemsize == 1 else 16
            self._scale = np.float32(1 / (2 ** (8 * dtype.itemsize) - 1))
        else:
            self.bits = 8 if dtype.kind == "b" else 32
        chunks = tuple(int(n) for n in array.chunks)
        self._chunk_bytes = math.prod(chunks) * dtype.itemsize
        # zarr decodes a chunk whole: a store of a few KB whose chunks are far larger
        # than its image would take gigabytes (as TIFF tiles, see _TiffReader._readable).
        if self._chunk_bytes > MAX_SEGMENT_BYTES and any(
            chunk > _tile_limit(size) for chunk, size in zip(chunks, shape, strict=True)
        ):
            raise ImageError(
                f"damaged Zarr store: chunks of {chunks} ({self._chunk_bytes:,} bytes "
                f"decoded) for an array of shape {shape}"
            )
        self._chunk_rows = chunks[axes.index("y")]
        self._chunks_across = -(-width // chunks[axes.index("x")])
        self._kept = {}  # (first row, c0, c1) -> the last band's chunk rows, decoded

    def working_bytes(self, rows):
        # zarr decodes every chunk a band meets, then copies the band out of them
        chunk_rows = -(-rows // self._chunk_rows) + 1
        return chunk_rows * self._chunks_across * self._chunk_bytes

    def _read(self, r0, r1, c0, c1):
        step = self._chunk_rows
        if r1 - r0 >= step:
            self._kept = {}
            raw = self._stored(r0, r1, c0, c1)
        else:
            # Bands shorter than a chunk: zarr decodes every chunk a read meets, so
            # each chunk was decoded once per band (a chunk of the whole image, once per
            # row). Whole chunk rows are read, and the last band's kept (as the TIFF
            # reader keeps its tiles).
            kept, self._kept = self._kept, {}
            pieces = []
            for top in range(r0 // step * step, r1, step):
                rows = kept.get((top, c0, c1))
                if rows is None:
                    rows = self._stored(top, min(top + step, self.shape[0]), c0, c1)
                self._kept[top, c0, c1] = rows
                pieces.append(rows[max(r0 - top, 0) : r1 - top])
            raw = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        with np.errstate(over="ignore"):
            data = raw.astype(np.float32)
        if self._scale is not None:
            data *= self._scale
        return np.ascontiguousarray(data), None

    def _stored(self, r0, r1, c0, c1):
        """Stored rows ``r0:r1``, columns ``c0:c1``, as ``(y, x[, c])``."""
        where = tuple(
            slice(r0, r1)
            if a == "y"
            else slice(c0, c1)
            if a == "x"
            else slice(None)
            if a == "c"
            else 0
            for a in self._axes
        )
        try:
            raw = np.asarray(self._array[where])
        except MemoryError:
            raise ImageError("not enough memory to decode") from None
        except Exception as error:
            raise ImageError(f"damaged Zarr store: {_reason(error)}") from None
        kept = [a for a in self._axes if a in ("y", "x", "c")]
        return raw.transpose([kept.index(a) for a in ("y", "x", "c") if a in kept])


def store_frames(path, frames, *, max_pixels, max_frames):
    """The frames of a Zarr store as :func:`~dilcli.io.images.iter_frames` gives them:
    one, every row read by :class:`_ZarrReader` (the values a streamed run reads)."""
    from dilcli.io.images import LoadedImage, _frame_indices

    for index in _frame_indices(frames, lambda: 1, max_frames):
        if index != 0:
            raise ImageError(f"has no frame {index} (a Zarr image has one)")
        with _ZarrReader.open(Path(path), max_pixels=max_pixels) as reader:
            try:
                data = reader.read(0, reader.shape[0])
            except MemoryError:
                raise ImageError("not enough memory to decode") from None
            yield LoadedImage(data, None, reader.bits, reader.notes)


# --- writers ---------------------------------------------------------------------------


def open_writer(path, *, shape, dtype, fmt, tile=TILE, compression=None):
    """A :class:`RegionWriter` of an image of ``shape`` and ``dtype`` at ``path``.

    Parameters
    ----------
    path : path-like
        The final name; nothing appears there before :meth:`RegionWriter.commit`.
    shape : tuple
        ``(H, W)`` or ``(H, W, C)``.
    dtype : dtype-like
        The samples written: float32, uint8 or uint16 (PNG: uint8 or uint16).
    fmt : str
        ``tiff`` (tiled BigTIFF), ``npy``, ``png`` or ``zarr`` (a Zarr v3 folder;
        needs ``pip install 'dilcli[zarr]'``).
    tile : int or None
        Tile side for ``tiff`` and chunk side for ``zarr``. None, for ``tiff``: no
        tiles, the samples uncompressed in one contiguous strip, byte for byte the
        file ``tifffile.imwrite`` writes for the whole array (a classic TIFF, BigTIFF
        past 4 GB): float32 outputs are written so in both paths (:func:`tiff_layout`).
    compression : str or int, optional
        ``tiff``: ``deflate`` (default), ``zstd``, ``lzw`` or ``none`` (with the
        horizontal or floating-point predictor when compressed); ``png``: zlib's
        level 0-9 (default 1, as :func:`dilcli.io.png.save_pixels`); ``zarr``: its
        default codecs (zstd); ``npy``: none.

    Integer outputs of 2 or 4 channels are gray or RGB with alpha (as in PNG); other
    channel counts are plain samples (3 integer channels are RGB). Float32 outputs
    keep every channel as it is (TIFF: RGB for 3 channels, as whole-image outputs).
    """
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) or (H, W, C) of positive sizes, got {shape}")
    if fmt not in WRITER_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(WRITER_FORMATS)}; got {fmt!r}")
    allowed = ("uint8", "uint16") if fmt == "png" else ("float32", "uint8", "uint16")
    if dtype.name not in allowed:
        raise ValueError(f"dtype for {fmt} must be one of {', '.join(allowed)}; got {dtype}")
    if tile is None and fmt == "tiff":
        return _ContiguousTiffWriter(Path(path), shape, dtype, compression=compression)
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 16 or tile % 16:
        raise ValueError(f"tile must be a positive multiple of 16, got {tile!r}")
    writer = {"tiff": _TiffWriter, "npy": _NpyWriter, "png": _PngWriter, "zarr": _ZarrWriter}
    return writer[fmt](Path(path), shape, dtype, tile=tile, compression=compression)


def tiff_layout(dtype):
    """The :func:`open_writer` options of a TIFF output of ``dtype``, the same whether
    the image is written whole or in bands (so both give the same bytes): float32
    values uncompressed in one strip, as ``tifffile.imwrite`` writes them (read by every
    TIFF reader; float noise barely compresses); pixels in deflated 256 x 256 tiles of a
    BigTIFF (regions of a huge output read without the rest)."""
    return {"tile": None} if np.dtype(dtype).kind == "f" else {}


def output_size(*, shape, dtype, fmt, tile=256, compression=None):
    """``(bytes, exact)``: the size of the file :func:`open_writer` would write with
    these arguments, before writing anything.

    Exact for ``.npy`` (numpy's header and the data); for an uncompressed TIFF (``tiff``
    with ``compression="none"`` or ``tile=None``) the data (tiles padded to whole tiles
    as stored), plus the header, tags and tile tables (within a few kilobytes; counted
    as exact). For
    compressed outputs an upper bound (what incompressible data would take: deflate
    and zstd add a few bytes a block); ``exact`` is False for those.
    """
    import io

    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    channels = shape[2] if len(shape) == 3 else 1
    data = math.prod(shape) * dtype.itemsize
    if fmt == "npy":
        header = io.BytesIO()
        fields = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(header, {**fields, "shape": shape})
        return len(header.getvalue()) + data, True
    if fmt == "tiff" and tile is None:  # one uncompressed strip: the data and the tags
        return data + 4096, True
    if fmt in ("tiff", "zarr"):
        tiles = -(-shape[0] // tile) * -(-shape[1] // tile)
        tile_bytes = tile * tile * channels * dtype.itemsize
        size = tiles * (tile_bytes + 16) + 4096  # the tile tables (BigTIFF), header, tags
        exact = fmt == "tiff" and compression == "none"
        return (size if exact else size + tiles * (tile_bytes // 1000 + 64)), exact
    # PNG: a filter byte a row, then zlib's stored blocks at worst, in IDAT chunks.
    raw = shape[0] * (1 + shape[1] * channels * dtype.itemsize)
    return raw + 5 * (raw // 16383 + 1) + 12 * (raw // 2**16 + 1) + 1024, False


class RegionWriter:
    """An image written band by band, top to bottom, renamed into place when complete.

    ``write_rows(r0, block)`` takes the next band (any height; ``r0`` must be the
    first row not yet written); ``commit()`` finishes the file and renames it into
    place (under the run's commit guard, :func:`dilcli.io.atomic.commit_guard`);
    ``abort()`` removes the temporary. As a context manager it commits when the block
    ends normally and aborts on an exception; a writer given fewer rows than its
    height does not commit (ValueError).
    """

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = path, shape, dtype
        self.rows_written = 0
        self._done = False

    def write_rows(self, r0, block):
        """Write rows ``r0 : r0 + len(block)``; ``block`` is ``(h, W)`` or ``(h, W, C)``
        like ``shape``, of ``dtype`` (float32 outputs take any float block)."""
        if self._done:
            raise ValueError(f"{self.path.name}: the writer is closed")
        if r0 != self.rows_written:
            raise ValueError(
                f"{self.path.name}: rows must come in order: expected row {self.rows_written}, "
                f"got {r0}"
            )
        block = np.asarray(block)
        if block.shape[1:] != self.shape[1:] or r0 + len(block) > self.shape[0]:
            raise ValueError(
                f"{self.path.name}: a block of shape {block.shape} at row {r0} does not fit "
                f"an image of shape {self.shape}"
            )
        if block.dtype != self.dtype and not (self.dtype.kind == "f" and block.dtype.kind == "f"):
            raise ValueError(
                f"{self.path.name}: a block of {block.dtype} for a {self.dtype} output "
                "(convert the values first)"
            )
        if len(block):
            try:
                self._write(np.ascontiguousarray(block, dtype=self.dtype))
            except BaseException as error:
                self.abort()
                raise self._named(error) from None
            self.rows_written += len(block)

    def commit(self):
        """Finish the file and rename it into place; every row must have been written."""
        if self._done:
            raise ValueError(f"{self.path.name}: the writer is closed")
        if self.rows_written != self.shape[0]:
            self.abort()
            raise ValueError(
                f"{self.path.name}: only {self.rows_written} of {self.shape[0]} rows written; "
                "nothing committed"
            )
        try:
            self._finish()
        except BaseException as error:
            self._done = True
            self._discard(error)
            raise self._named(error) from None
        self._done = True
        try:
            self._rename()
        except OSError as error:  # a flush that meets a full disk (the temporary is gone)
            raise self._named(error) from None

    def _named(self, error):
        """``error``, naming this output if it is an OSError that names no file (a full
        disk: "No space left on device: out/x.npy", not the bare reason)."""
        if isinstance(error, OSError) and error.strerror and not error.filename:
            return OSError(error.errno, error.strerror, str(self.path))
        return error

    def abort(self):
        """Remove the temporary; nothing appears under the final name."""
        if not self._done:
            self._done = True
            self._discard(_Aborted())

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is None:
            if not self._done:
                self.commit()
        else:
            self.abort()

    def regions(self):
        """What tasks elsewhere (a Dask cluster) write whole chunk rows of the temporary
        with, a :class:`ZarrRegion`; None for the formats whose rows come in order."""
        return None

    def _write(self, block):  # pragma: no cover - every writer has its own
        raise NotImplementedError

    def _finish(self):
        """Complete the temporary's content."""

    def _rename(self):  # pragma: no cover
        raise NotImplementedError

    def _discard(self, error):  # pragma: no cover
        raise NotImplementedError


class _Aborted(Exception):
    """Thrown into a temporary's context to remove it."""


class _FileWriter(RegionWriter):
    """A writer into one temporary file by :func:`dilcli.io.atomic.atomic_write`."""

    def __init__(self, path, shape, dtype):
        super().__init__(path, shape, dtype)
        self._context = atomic.atomic_write(path)
        self._handle = self._context.__enter__()

    def _rename(self):
        self._context.__exit__(None, None, None)  # flush, fsync, guard, rename

    def _discard(self, error):
        # The temporary is removed whatever closing it raises (a full disk fails the
        # flush of what is buffered: the error being handled already says so).
        with contextlib.suppress(_Aborted, OSError):
            self._context.__exit__(type(error), error, error.__traceback__)


class _NpyWriter(_FileWriter):
    """numpy's header (as ``numpy.save`` writes it), then the rows as they come."""

    def __init__(self, path, shape, dtype, *, tile, compression):
        if compression not in (None, "none"):
            raise ValueError(f"npy outputs are not compressed; got compression={compression!r}")
        super().__init__(path, shape, dtype)
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": shape,
        }
        np.lib.format.write_array_header_1_0(self._handle, header)

    def _write(self, block):
        self._handle.write(memoryview(block).cast("B"))


class _PngWriter(_FileWriter):
    """Rows into :class:`dilcli.io.png.PngStream`: the whole image's PNG, byte for byte."""

    def __init__(self, path, shape, dtype, *, tile, compression):
        from dilcli.io.png import PngStream

        level = 1 if compression is None else compression
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise ValueError(f"PNG compression is zlib's level 0-9, got {compression!r}")
        channels = shape[2] if len(shape) == 3 else 1
        if channels > 4:
            raise ValueError(f"a PNG holds 1 to 4 channels, not {channels}")
        super().__init__(path, shape, dtype)
        self._stream = PngStream(
            self._handle,
            height=shape[0],
            width=shape[1],
            channels=channels,
            depth=8 * dtype.itemsize,
            compression=level,
        )

    def _write(self, block):
        self._stream.write_rows(block)

    def _finish(self):
        self._stream.close()


class _TileRows:
    """Rows gathered until a full row of tiles (``tile`` rows, or the image's last)."""

    def __init__(self, shape, dtype, tile):
        self.shape, self.dtype, self.tile = shape, dtype, tile
        self.top = 0  # the first image row of the row of tiles being filled
        self._buffer = None
        self._filled = 0

    def add(self, block):
        """Yield ``(top, rows)`` for each row of tiles ``block`` completes."""
        start = 0
        while start < len(block):
            rows = min(self.tile, self.shape[0] - self.top)
            if self._filled == 0 and len(block) - start >= rows:
                yield self.top, block[start : start + rows]  # a whole row of tiles: no copy
                start += rows
                self.top += rows
                continue
            if self._buffer is None:
                self._buffer = np.empty((rows, *self.shape[1:]), self.dtype)
            take = min(rows - self._filled, len(block) - start)
            self._buffer[self._filled : self._filled + take] = block[start : start + take]
            self._filled += take
            start += take
            if self._filled == rows:
                yield self.top, self._buffer
                self._buffer, self._filled = None, 0
                self.top += rows


class _TiffWriter(_FileWriter):
    """A tiled BigTIFF written by tifffile's ``TiffWriter`` from an iterator of tiles.

    tifffile pulls tiles from an iterator while bands are pushed here, so its
    ``write`` runs on a thread fed through a small queue (``TIFF_TILES_IN_FLIGHT``
    tiles, at most a row); rows wait in :class:`_TileRows` until a row of tiles is full.
    """

    _END = object()

    def __init__(self, path, shape, dtype, *, tile, compression):
        name = "deflate" if compression is None else compression
        if name not in TIFF_COMPRESSIONS:
            raise ValueError(
                f"TIFF compression must be one of {', '.join(TIFF_COMPRESSIONS)}; got "
                f"{compression!r}"
            )
        super().__init__(path, shape, dtype)
        self._rows = _TileRows(shape, dtype, tile)
        self._tile = tile
        channels = shape[2] if len(shape) == 3 else 1
        codec = TIFF_COMPRESSIONS[name]
        in_flight = min(TIFF_TILES_IN_FLIGHT, -(-shape[1] // tile))  # at most a row
        with_alpha = dtype.kind == "u" and channels in (2, 4)  # as in PNG
        rgb = channels == 3 or (with_alpha and channels == 4)
        options = dict(
            shape=shape[:2] if channels == 1 else shape,  # (H, W, 1) would be pages
            dtype=dtype,
            tile=(tile, tile),
            compression=codec,
            predictor=codec is not None,
            photometric="rgb" if rgb else "minisblack",
            metadata=None,
            # Tiles are compressed on the cores this process may use, a few per core
            # at a time (tifffile's default gathers 512 MB of tiles first; a row of
            # tiles is 10 MB of 8-bit gray at 40000 wide, for every output at once).
            maxworkers=threads(),
            buffersize=in_flight * tile * tile * channels * dtype.itemsize,
        )
        if channels > 1:
            options["planarconfig"] = "contig"
        if with_alpha:
            options["extrasamples"] = [2]  # unassociated alpha
        self._queue = queue.Queue(maxsize=in_flight)
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(options,), name="dilcli-tiff-writer", daemon=True
        )
        self._thread.start()

    def _run(self, options):
        import tifffile

        def tiles():
            while True:
                item = self._queue.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        try:
            # A handle from os.fdopen is named by a number, which tifffile cannot split
            # as a path: its FileHandle takes a name.
            handle = tifffile.FileHandle(self._handle, mode="wb", name=self.path.name, size=0)
            with tifffile.TiffWriter(handle, bigtiff=True) as writer:
                writer.write(tiles(), **options)
        except BaseException as error:
            self._error = error
            with contextlib.suppress(queue.Empty):  # unblock a producer waiting on a full queue
                while True:
                    self._queue.get_nowait()

    def _failed(self, error):
        """The writing thread's ``error`` as the error of this output."""
        if isinstance(error, OSError) and error.strerror:  # a full disk, a lost mount
            return OSError(error.errno, error.strerror, str(self.path))
        return ImageError(f"cannot write {self.path.name}: {_reason(error)}")

    def _put(self, item):
        while True:
            if self._error is not None or not self._thread.is_alive():
                error = self._error or RuntimeError("the TIFF writer stopped")
                raise self._failed(error) from None
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _write(self, block):
        tile = self._tile
        for _, rows in self._rows.add(block):
            if rows.ndim == 3 and rows.shape[2] == 1:
                rows = rows[..., 0]
            for left in range(0, self.shape[1], tile):
                part = rows[:, left : left + tile]
                if part.shape[1] == 1:
                    # tifffile's predictor garbles a tile one column wide (NaN in
                    # float32 images of one column): give it a tile of the full width.
                    part = np.pad(part, [(0, 0), (0, tile - 1)] + [(0, 0)] * (part.ndim - 2))
                self._put(np.ascontiguousarray(part))

    def _finish(self):
        # tifffile stops pulling after the last tile it expects: the thread may have
        # ended already, and then needs no end mark.
        while self._thread.is_alive():
            try:
                self._queue.put(self._END, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        if self._error is not None:
            raise self._failed(self._error)

    def _discard(self, error):
        if self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            with contextlib.suppress(queue.Full):
                self._queue.put(_Aborted(), timeout=5)
            self._thread.join(timeout=60)
        super()._discard(error)


class _ContiguousTiffWriter(_FileWriter):
    """An uncompressed TIFF of one contiguous strip: tifffile writes the tags and
    reserves the data (as ``tifffile.memmap`` does), then the rows are written in place
    as they come, so the file is ``tifffile.imwrite``'s for the whole array."""

    def __init__(self, path, shape, dtype, *, compression):
        if compression not in (None, "none"):
            raise ValueError(f"a TIFF without tiles is not compressed; got {compression!r}")
        import tifffile

        super().__init__(path, shape, dtype)
        rgb = len(shape) == 3 and shape[2] == 3
        size = math.prod(shape) * dtype.itemsize
        try:
            handle = tifffile.FileHandle(self._handle, mode="wb", name=path.name, size=0)
            # imwrite's rule: BigTIFF when the data leaves no room for the tags below 4 GB
            with tifffile.TiffWriter(handle, bigtiff=size > 2**32 - 2**25) as writer:
                offset, _ = writer.write(
                    None,
                    shape=shape,
                    dtype=dtype,
                    photometric="rgb" if rgb else "minisblack",
                    returnoffset=True,
                )
            self._handle.seek(offset)
        except BaseException as error:
            self._done = True
            self._discard(error)
            raise self._named(error) from None

    def _write(self, block):
        self._handle.write(memoryview(block).cast("B"))


class _ZarrWriter(RegionWriter):
    """A Zarr v3 array written in a temporary folder beside ``path``, renamed into
    place when complete; chunks of ``tile`` x ``tile`` (x channels) written whole.

    Besides rows in order (:meth:`write_rows`), bands computed elsewhere fill it in any
    order: a task writes the whole chunk rows of its band into the temporary itself
    (:meth:`regions`, :meth:`ZarrRegion.write`) and hands the partial ones at its
    band's ends to this writer (:meth:`write_region`), which writes each chunk row once
    it has all its rows, so no two processes ever write one chunk.
    """

    def __init__(self, path, shape, dtype, *, tile, compression):
        try:
            import zarr
        except ImportError:
            raise ImageError(
                f"cannot write {path.name}: Zarr outputs need zarr (pip install 'dilcli[zarr]')"
            ) from None
        if compression not in (None, "default"):
            raise ValueError(f"zarr outputs use zarr's default codecs; got {compression!r}")
        super().__init__(path, shape, dtype)
        self._temp = Path(
            tempfile.mkdtemp(dir=path.parent, prefix=atomic._owner_prefix(), suffix=".part")
        )
        try:
            chunks = (tile, tile, *shape[2:])
            self._array = zarr.create_array(
                store=str(self._temp), shape=shape, chunks=chunks, dtype=dtype, fill_value=0
            )
        except BaseException:
            shutil.rmtree(self._temp, ignore_errors=True)
            raise
        self._rows = _TileRows(shape, dtype, tile)
        self._tile = tile
        self._partial = {}  # chunk row -> (its rows, rows filled): bands' ends, gathered

    def _write(self, block):
        for top, rows in self._rows.add(block):
            self._array[top : top + len(rows)] = rows

    def regions(self):
        return ZarrRegion(str(self._temp), self.shape[0], self._tile)

    def written_elsewhere(self, rows):
        """Count ``rows`` rows that a :class:`ZarrRegion` wrote into the temporary."""
        self.rows_written += rows

    def write_region(self, r0, block):
        """Rows ``r0 : r0 + len(block)``, in any order (bands' ends, from
        :meth:`ZarrRegion.write`); the rows of a chunk row wait until it is complete."""
        block = np.asarray(block)
        if self._done or block.shape[1:] != self.shape[1:] or r0 + len(block) > self.shape[0]:
            raise ValueError(f"{self.path.name}: no region of shape {block.shape} at row {r0}")
        try:
            end, tile = r0 + len(block), self._tile
            row = r0
            while row < end:
                top = row // tile * tile
                bottom = min(top + tile, self.shape[0])
                stop = min(bottom, end)
                rows = block[row - r0 : stop - r0]
                if row == top and stop == bottom:
                    self._array[top:bottom] = rows
                else:
                    gathered, filled = self._partial.pop(top, (None, 0))
                    if gathered is None:
                        gathered = np.zeros((bottom - top, *self.shape[1:]), self.dtype)
                    gathered[row - top : stop - top] = rows
                    filled += stop - row
                    if filled < bottom - top:
                        self._partial[top] = (gathered, filled)
                    else:
                        self._array[top:bottom] = gathered
                row = stop
        except BaseException:
            self.abort()
            raise
        self.rows_written += len(block)

    def _finish(self):
        if self._partial:
            raise ValueError(f"{self.path.name}: rows missing at row {min(self._partial)}")

    def _rename(self):
        if atomic._guard is not None and not atomic._guard():
            shutil.rmtree(self._temp, ignore_errors=True)
            raise atomic.RunEnded(f"not written: the run that asked for {self.path.name} has ended")
        os.chmod(self._temp, 0o777 & ~atomic._UMASK)  # mkdtemp's 0o700: as files are made
        old = None
        if self.path.is_dir() and not self.path.is_symlink() and not _replaceable(self.path):
            shutil.rmtree(self._temp, ignore_errors=True)
            raise ImageError(
                f"not written: {self.path.name} is a folder of other files, not a Zarr "
                "store (move it away to write there)"
            )
        if os.path.lexists(self.path):
            # A folder cannot replace a folder (nor a file) atomically: the old store,
            # file or link steps aside first (under a temporary's name), so the final
            # name never holds a mix.
            old = Path(
                tempfile.mkdtemp(
                    dir=self.path.parent, prefix=atomic._owner_prefix(), suffix=".part"
                )
            )
            os.replace(self.path, old / "old")
        try:
            os.replace(self._temp, self.path)
        except OSError as error:
            shutil.rmtree(self._temp, ignore_errors=True)
            raise OSError(error.errno, error.strerror, str(self.path)) from None
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)

    def _discard(self, error):
        shutil.rmtree(self._temp, ignore_errors=True)


def _replaceable(folder):
    """Whether an output may replace ``folder``: a Zarr store, or empty. A folder of
    anything else under an output's name is the user's, never removed."""
    if is_zarr_store(folder):
        return True
    with os.scandir(folder) as entries:
        return not any(entries)


class ZarrRegion:
    """The temporary store of a :class:`_ZarrWriter`, as a task elsewhere (a Dask
    worker) writes its band into it: whole chunk rows only (picklable)."""

    def __init__(self, store, height, chunk_rows):
        self.store, self.height, self.chunk_rows = store, height, chunk_rows

    def write(self, r0, block):
        """Write the whole chunk rows of rows ``r0 : r0 + len(block)``; return ``(rows
        written, [(row, rows)])``, the second the partial chunk rows at the block's ends,
        for the store's writer (:meth:`_ZarrWriter.write_region`) to complete."""
        r1, chunk = r0 + len(block), self.chunk_rows
        first = -(-r0 // chunk) * chunk
        last = r1 if r1 == self.height else r1 // chunk * chunk
        if first >= last:
            return 0, [(r0, block)] if len(block) else []
        import zarr

        # "r+": the store must exist; a band never creates one its writer removed.
        array = zarr.open_array(self.store, mode="r+")
        array[first:last] = block[first - r0 : last - r0]
        rest = [(r0, block[: first - r0])] if first > r0 else []
        if last < r1:
            rest.append((last, block[last - r0 :]))
        return last - first, rest
