"""Images in and out: decode to float, map responses to pixels, encode atomically.

The only module that reads or writes image files. Integer images become float32 in
[0, 1] on load (8-bit / 255, 16-bit / 65535); alpha is split off, never filtered.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dilcli.io.atomic import atomic_write
from dilcli.vocab import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".npy"}
)
# Pillow may open only these (never EPS, which runs Ghostscript, or rarer decoders).
PILLOW_FORMATS = ("PNG", "JPEG", "TIFF", "GIF", "BMP", "WEBP")  # JPEG includes MPO
TRUNCATED_HINT = " (--allow-truncated decodes what can be read)"
# --allow-truncated pads a file with zeros only up to its own size (or 1 MB): a tiny
# file claiming gigabytes stays refused.
_PAD_LIMIT = 2**20
_NOT_PADDED = "less than half of it is there, so it is not padded"
_UNREADABLE = "; unreadable even with --allow-truncated"


class ImageError(Exception):
    """A file that cannot be read or written as an image; the message says why."""


class PixelLimitError(ImageError):
    """An image over ``max_pixels`` (``--max-pixels``), refused from its header.

    ``size`` says what is over which limit ("image is 40x30 = 1,200 pixels, over the
    limit of 1,000"); the message adds how to lift it. Callers that know why the image
    is decoded whole (:mod:`dilcli.batch.jobs`) give their own hint instead.
    """

    def __init__(self, size, hint):
        super().__init__(f"{size} ({hint})")
        self.size = size


@dataclass
class LoadedImage:
    """Decoded pixels as float32 ``(H, W)`` or ``(H, W, C)``, plus alpha apart."""

    data: np.ndarray
    alpha: np.ndarray | None
    bits: int  # 8 or 16 for integer images, 32 for float data
    notes: tuple[str, ...] = ()  # warnings: damaged data decoded anyway, NaN replaced, ...
    frames: int = 1  # frames (pages) in the file, counted while it was open; 1 if unknown


def load_image(path, *, frame=0, max_pixels=DEFAULT_MAX_PIXELS, allow_truncated=False):
    """Decode one frame of ``path`` (an image, or an ``.npy`` array) to a :class:`LoadedImage`.

    The format is recognised from the file's first bytes, not from its extension, and
    only regular files are opened (never FIFOs or devices). EXIF orientation is applied;
    palettes and CMYK become RGB(A); 1-bit becomes gray. ``max_pixels`` (0 for no limit)
    is checked from the header, before anything is decoded.

    Damaged files (truncated, a PNG chunk with a bad CRC, corrupt compressed data) raise
    :class:`ImageError` naming the problem. With ``allow_truncated``, what can be read
    is decoded (the decoder fills the rest) and ``notes`` says so. NaN and infinite
    values in float data (``.npy``, float TIFF) are replaced by 0, and ``notes`` counts
    them.
    """
    frames = iter_frames(path, (frame,), max_pixels=max_pixels, allow_truncated=allow_truncated)
    return next(frames)


def count_frames(path, *, max_frames=DEFAULT_MAX_FRAMES, allow_truncated=False):
    """Frames (pages) in ``path``: GIF, APNG, WebP and TIFF may hold several; others 1.

    Raises :class:`ImageError` when there are more than ``max_frames`` (0: no limit),
    or when the file cannot be read as by :func:`load_image`.
    """
    path = Path(path)
    if path.is_dir():  # a Zarr store: one frame (iter_frames says what is wrong)
        return 1
    kind = sniff(_read_head(path))
    if kind == "NPY":
        count = 1
    elif kind is None:
        raise _unknown_format(path)
    elif kind == "TIFF" and _tiff_is_exact(path):
        import tifffile

        with _tifffile_log(), tifffile.TiffFile(path) as tif:
            count = _guarded(lambda: len(tif.pages), "TIFF")
    else:
        try:
            image = _pillow_open(path, kind, 0, lenient=allow_truncated)[0]
        except _Damaged as error:
            damage = _damage(path, kind, error)
            suffix = _UNREADABLE if allow_truncated else TRUNCATED_HINT
            raise ImageError(damage + suffix) from None
        with image:
            count = _guarded(lambda: getattr(image, "n_frames", 1), kind)
    if count < 1:
        raise ImageError("has no frames")
    _check_frames(count, max_frames)
    return count


def iter_frames(
    path,
    frames=None,
    *,
    max_pixels=DEFAULT_MAX_PIXELS,
    max_frames=DEFAULT_MAX_FRAMES,
    allow_truncated=False,
):
    """Decode the ``frames`` (indices; None: every frame) of ``path``, one at a time.

    Each frame is a :class:`LoadedImage`, decoded as by :func:`load_image`; every frame
    is checked against ``max_pixels``, and ``max_frames`` (0: no limit) bounds the count
    when every frame is asked for. The file is opened once.
    """
    path = Path(path)
    if path.is_dir():  # a Zarr store: its region reader, reading every row
        from dilcli.io.regions import store_frames

        yield from store_frames(path, frames, max_pixels=max_pixels, max_frames=max_frames)
        return
    head = _read_head(path)
    kind = sniff(head)
    options = dict(max_pixels=max_pixels, max_frames=max_frames, allow_truncated=allow_truncated)
    if kind == "NPY":
        yield from _npy_frames(path, frames, **options)
    elif kind is None:
        raise _unknown_format(path)
    elif kind == "TIFF" and _tiff_is_exact(path):
        yield from _tiff_frames(path, frames, **options)
    else:
        yield from _pillow_frames(path, kind, frames, **options)


def _unknown_format(path):
    if Path(path).suffix.lower() == ".npy":
        return ImageError("not a .npy array: it does not start with numpy's header")
    return ImageError("unknown or damaged format (not PNG, JPEG, TIFF, GIF, BMP, WebP or .npy)")


def _damage(path, kind, error):
    """What is wrong with a file Pillow failed on: for PNG, the first bad chunk if any."""
    problem = _png_damage(path) if kind == "PNG" else None
    return f"damaged PNG file: {problem}" if problem else str(error)


def _read_head(path):
    """The first bytes of a regular file; an ImageError for anything else."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError("no such file") from None
    except OSError as error:  # ELOOP for a link loop, ...
        raise ImageError(f"cannot read: {error.strerror or _reason(error)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError("is a folder, not an image")
    if not stat.S_ISREG(info.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(info.st_mode) else "device or socket"
        raise ImageError(f"special file ({kind}), not opened")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as error:
        raise ImageError(f"cannot read: {error.strerror or _reason(error)}") from None
    if not head:
        raise ImageError("empty file (0 bytes): unknown or damaged format")
    return head


def sniff(head):
    """The format a file's first bytes announce, or None."""
    if head.startswith(b"\x93NUMPY"):
        return "NPY"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _check_pixels(width, height, max_pixels, channels=1):
    """The pixel limit; more than 4 channels (TIFF samples, .npy) count as channels/4 pixels."""
    if max_pixels and width * height > max_pixels:
        raise PixelLimitError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}",
            "raise it with --max-pixels, 0 for no limit",
        )
    if max_pixels and channels > 4 and width * height * channels > 4 * max_pixels:
        raise PixelLimitError(
            f"image is {width}x{height} with {channels:,} channels = "
            f"{width * height * channels:,} values, over the limit of {4 * max_pixels:,}",
            "4 a pixel; raise --max-pixels, 0 for no limit",
        )


def _check_frames(count, max_frames):
    if max_frames and count > max_frames:
        raise ImageError(
            f"has {count:,} frames, over the limit of {max_frames:,} "
            "(raise it with --max-frames, 0 for no limit)"
        )


def _frame_indices(frames, count_frames, max_frames):
    """The frames to decode: ``frames``, or all of them (counted, within the limit)."""
    if frames is not None:
        return list(frames)
    count = count_frames()
    _check_frames(count, max_frames)
    return list(range(count))


def _guarded(function, kind):
    """Call ``function``; a damaged file's exception becomes an ImageError."""
    try:
        return function()
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("not enough memory to decode") from None
    except Exception as error:
        raise ImageError(f"damaged {kind} file: {_reason(error)}") from None


def _finite(data, notes):
    """Float data with NaN and +-Inf replaced by 0 (in place), counted in ``notes``."""
    bad = ~np.isfinite(data)
    count = int(np.count_nonzero(bad))
    if count:
        data[bad] = 0
        notes.append(f"{count:,} NaN or infinite value(s) replaced by 0")
    return data


# --- .npy arrays ------------------------------------------------------------------------


def _npy_frames(path, frames, *, max_pixels, max_frames, allow_truncated):
    """An ``.npy`` array is one frame; its header is checked before any data is read."""
    for index in _frame_indices(frames, lambda: 1, max_frames):
        if index != 0:
            raise ImageError(f"has no frame {index} (an .npy array has one)")
        yield _load_npy(path, max_pixels, allow_truncated)


def check_npy_image(shape, dtype, max_pixels):
    """An ``.npy`` header that holds an image: (H, W) or (H, W, C) real numbers, within
    ``max_pixels``; else an ImageError."""
    if len(shape) not in (2, 3) or dtype.kind not in "biuf" or dtype.fields or 0 in shape:
        raise ImageError(
            f"expected a non-empty real (H, W) or (H, W, C) array, got {dtype} {shape}"
        )
    _check_pixels(shape[1], shape[0], max_pixels, shape[2] if len(shape) == 3 else 1)


def _load_npy(path, max_pixels, allow_truncated):
    """An .npy image through :func:`dilcli.arrays.read_npy`: shape and pixels checked
    from the header, before anything is allocated; a short file is padded only with
    ``allow_truncated`` (and only up to its own size, or 1 MB)."""
    from dilcli.io import arrays

    notes = []

    def check(shape, dtype):
        check_npy_image(shape, dtype, max_pixels)

    def truncated(message, promised, held):
        if not allow_truncated:
            raise ImageError(message + TRUNCATED_HINT)
        if promised - held > max(held, _PAD_LIMIT):
            raise ImageError(f"{message}; {_NOT_PADDED}")
        notes.append(f"{message}: missing values are 0")

    try:
        array = arrays.read_npy(path, check=check, on_truncated=truncated)
    except arrays.ArrayError as error:
        raise ImageError(str(error)) from None
    except MemoryError:
        raise ImageError("not enough memory to decode") from None
    with np.errstate(over="ignore"):  # float64 beyond float32's range: Inf, then 0 below
        data = np.ascontiguousarray(array, dtype=np.float32)
    return LoadedImage(_finite(data, notes), None, 32, tuple(notes))


# --- TIFF through tifffile: 16-bit colour, 32-bit and float at full precision ------------


def _tiff_is_exact(path):
    """Whether tifffile decodes this TIFF (Pillow would drop bits): more than 8 bits a sample.

    8-bit, 1-bit and CMYK TIFFs, and files tifffile cannot parse, go to Pillow.
    """
    try:
        import tifffile

        with _tifffile_log(), tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            return page.dtype is not None and page.dtype.itemsize > 1 and page.photometric != 5
    except Exception:
        return False


@contextlib.contextmanager
def _tifffile_log():
    """tifffile logs damaged structures; keep that off the terminal (errors say it)."""
    import logging

    logger = logging.getLogger("tifffile")
    handler = logging.NullHandler()
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


def _tiff_frames(path, frames, *, max_pixels, max_frames, allow_truncated):
    import tifffile

    with _tifffile_log(), tifffile.TiffFile(path) as tif:
        count = _guarded(lambda: len(tif.pages), "TIFF")
        for index in _frame_indices(frames, lambda: count, max_frames):
            if index >= count:
                raise ImageError(f"has no frame {index} (it has {count})")
            page = _guarded(lambda index=index: tif.pages[index].aspage(), "TIFF")
            width, height, samples, depth = _tiff_sizes(page)
            _check_pixels(width, height, max_pixels, samples)
            if depth > 1:
                raise ImageError("volumetric TIFF pages (ImageDepth > 1) are not supported")
            notes = []
            try:
                array = page.asarray()
            except MemoryError:
                raise ImageError("not enough memory to decode") from None
            except Exception as error:
                reason = f"damaged TIFF file: {_reason(error)}"
                if not allow_truncated:
                    raise ImageError(reason + TRUNCATED_HINT) from None
                array = _padded_tiff_page(path, index, page, reason)
                notes.append(f"{reason}; decoded what could be read, the rest is 0")
            loaded = _from_tiff_array(array, page, notes)
            loaded.frames = count
            yield loaded


def _tiff_sizes(page):
    """Width, height, samples per pixel and depth of a TIFF page, each checked to be a
    number: a damaged tag (a count of 0, or several values) gives tifffile a tuple."""
    sizes = []
    for name, tag in (
        ("imagewidth", "ImageWidth"),
        ("imagelength", "ImageLength"),
        ("samplesperpixel", "SamplesPerPixel"),
        ("imagedepth", "ImageDepth"),
    ):
        value = _guarded(lambda name=name: getattr(page, name), "TIFF")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ImageError(f"damaged TIFF file: its {tag} tag is {value!r}, not a size")
        sizes.append(int(value))
    return sizes


def _padded_tiff_page(path, index, page, reason):
    """A truncated TIFF page decoded as if its missing bytes were zeros (--allow-truncated)."""
    import tifffile

    ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
    size = os.path.getsize(path)
    missing = max(ends, default=0) - size
    if missing > max(size, _PAD_LIMIT):
        raise ImageError(f"{reason}; {_NOT_PADDED}")
    if missing <= 0:
        raise ImageError(reason + _UNREADABLE)
    padded = io.BytesIO(Path(path).read_bytes() + bytes(missing))
    try:
        with tifffile.TiffFile(padded) as tif:
            return tif.pages[index].asarray()
    except MemoryError:
        raise ImageError("not enough memory to decode") from None
    except Exception:
        raise ImageError(reason + _UNREADABLE) from None


def _from_tiff_array(array, page, notes):
    axes = page.axes
    shape_text = f"axes {axes}, shape {array.shape}"
    if len(axes) != array.ndim or "Y" not in axes or "X" not in axes:
        raise ImageError(f"unsupported TIFF layout ({shape_text})")
    if any(a not in "YXS" and n != 1 for a, n in zip(axes, array.shape, strict=True)):
        raise ImageError(f"unsupported TIFF layout ({shape_text})")
    array = array[tuple(slice(None) if a in "YXS" else 0 for a in axes)]
    kept = [a for a in axes if a in "YXS"]
    array = array.transpose([kept.index(a) for a in "YXS" if a in kept])
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "u" or kind == "b":
        bits = 8 if size == 1 else 16  # 16 is as deep as PNG outputs go
        data = array.astype(np.float32)
        data *= np.float32(1 / (2 ** (8 * size) - 1)) if kind == "u" else np.float32(1)
        if page.photometric == 0:  # MINISWHITE: 0 is white
            data = np.float32(1) - data
    elif kind in "fi":  # measurements: values as they are, like .npy arrays
        with np.errstate(over="ignore"):
            data, bits = _finite(array.astype(np.float32), notes), 32
    else:
        raise ImageError(f"unsupported TIFF sample type {array.dtype}")
    alpha = None
    extra = tuple(page.extrasamples or ())
    if data.ndim == 3 and data.shape[2] in (2, 4) and (not extra or extra[-1] in (1, 2)):
        data, alpha = data[..., :-1], data[..., -1]
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    orientation = page.tags.valueof(274, 1)
    data = _orient(data, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
    return LoadedImage(np.ascontiguousarray(data), alpha, bits, tuple(notes))


def _orient(array, orientation):
    """Apply the TIFF/EXIF orientation tag (1-8) to rows and columns, as Pillow does."""
    if orientation in (5, 6, 7, 8):
        array = array.swapaxes(0, 1)  # transpose, then flip to the rotation asked
    flip_rows = orientation in (3, 4, 7, 8)
    flip_columns = orientation in (2, 3, 6, 7)
    return array[:: -1 if flip_rows else 1, :: -1 if flip_columns else 1]


# --- everything else through Pillow -----------------------------------------------------

_PILLOW_LOCK = threading.RLock()


@contextlib.contextmanager
def _pillow_settings(lenient, max_image_pixels=None):
    """Pillow's module-wide switches, set for one call (under a lock), then restored.

    dilcli checks its own pixel limit from the header with a clearer message, so
    Pillow's is off while opening; ``lenient`` is Pillow's LOAD_TRUNCATED_IMAGES.
    Pillow's warnings are collected (the list yielded), not printed.
    """
    from PIL import Image, ImageFile

    with _PILLOW_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = max_image_pixels, lenient
        try:
            yield caught
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _pillow_notes(caught):
    from PIL import Image

    notes = []
    for warning in caught:
        if not issubclass(warning.category, Image.DecompressionBombWarning):
            notes.append(f"Pillow: {_reason(warning.message)}")
    return notes


class _Damaged(Exception):
    """Decoding failed on damaged data (the message says how); maybe worth a lenient retry."""


def _pillow_open(path, kind, max_pixels, *, lenient):
    """Open with Pillow and check the size from the header; (image, notes)."""
    from PIL import Image

    with _pillow_settings(lenient) as caught:
        try:
            image = Image.open(path, formats=PILLOW_FORMATS)
        except Image.UnidentifiedImageError:
            raise _Damaged(f"damaged {kind} file: Pillow cannot read its header") from None
        except MemoryError:
            raise ImageError("not enough memory to decode") from None
        except Exception as error:
            raise _Damaged(_pillow_reason(error, kind)) from None
    try:
        _check_pixels(image.width, image.height, max_pixels)
    except ImageError:
        image.close()
        raise
    return image, _pillow_notes(caught)


def _pillow_reason(error, kind):
    text = _reason(error)
    if "MAX_TEXT" in text:
        raise ImageError(
            f"PNG text chunks over Pillow's limits ({text}): refused as a decompression bomb"
        ) from None
    if isinstance(error, _pillow_bomb_error()):
        pixels = re.search(r"\((\d+) pixels\)", text)
        claim = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise ImageError(f"a tile or frame of the image has {claim}, over the limit") from None
    return f"damaged {kind} file: {text}"


def _pillow_bomb_error():
    from PIL import Image

    return Image.DecompressionBombError


def _pillow_frames(path, kind, frames, *, max_pixels, max_frames, allow_truncated):
    """Frames decoded by Pillow, the file opened once.

    A damaged file is an ImageError; with ``allow_truncated``, a strict attempt that
    fails is followed by a lenient one (Pillow's LOAD_TRUNCATED_IMAGES) and a note.
    """
    damage = None
    try:
        image, open_notes = _pillow_open(path, kind, max_pixels, lenient=False)
        problem = _png_damage(path) if kind == "PNG" else None
        if problem:
            image.close()
            raise _Damaged(f"damaged PNG file: {problem}")
    except _Damaged as error:
        damage = _damage(path, kind, error)
        if not allow_truncated:
            raise ImageError(damage + TRUNCATED_HINT) from None
        image, open_notes = _lenient_open(path, kind, max_pixels, damage)
    try:
        count = lambda: _guarded(lambda: getattr(image, "n_frames", 1), kind)  # noqa: E731
        for index in _frame_indices(frames, count, max_frames):
            try:
                loaded = _pillow_frame(path, image, index, kind, max_pixels, damage is not None)
            except _Damaged as error:
                if damage is not None:
                    raise ImageError(f"{error}{_UNREADABLE}") from None
                if not allow_truncated:
                    raise ImageError(f"{error}{TRUNCATED_HINT}") from None
                damage = str(error)
                image.close()
                image, open_notes = _lenient_open(path, kind, max_pixels, damage)
                try:
                    loaded = _pillow_frame(path, image, index, kind, max_pixels, True)
                except _Damaged:
                    raise ImageError(damage + _UNREADABLE) from None
            notes = list(open_notes) + list(loaded.notes)
            if damage:
                notes.insert(0, f"{damage}; decoded what could be read")
            loaded.notes = tuple(dict.fromkeys(notes))
            loaded.frames = _frame_count(image, lenient=damage is not None)
            yield loaded
    finally:
        image.close()


def _frame_count(image, *, lenient):
    """Frames of an open Pillow image (counted once, then cached by Pillow), for the
    note on a file reduced to its first frame; 1 if they cannot be counted."""
    with _pillow_settings(lenient):
        try:
            return max(1, int(getattr(image, "n_frames", 1)))
        except Exception:  # the frame was decoded; the count only serves a note
            return 1


def _lenient_open(path, kind, max_pixels, damage):
    try:
        return _pillow_open(path, kind, max_pixels, lenient=True)
    except _Damaged:
        raise ImageError(damage + _UNREADABLE) from None


# Pillow decodes 16-bit colour PNGs to 8 bits, keeping each sample's high byte. Decoded
# again with the little-endian raw mode (the same bytes per pixel, so the same filters)
# it yields the low bytes; gray+alpha is read as four plain bytes per pixel in one pass.
_DEEP_PNG_RAWMODES = {
    "RGB;16B": ("RGB;16B", "RGB;16L"),
    "RGBA;16B": ("RGBA;16B", "RGBA;16L"),
    "LA;16B": ("RGBA",),
}


def _pillow_frame(path, image, index, kind, max_pixels, lenient):
    """Seek to frame ``index``, check its size, decode it and convert it."""
    with _pillow_settings(lenient, max_pixels or None) as caught:
        try:
            if index != image.tell():
                image.seek(index)
            _check_pixels(image.width, image.height, max_pixels)
            rawmode = image.tile[0].args if kind == "PNG" and len(image.tile) == 1 else None
            if rawmode in _DEEP_PNG_RAWMODES and not getattr(image, "is_animated", False):
                loaded = _deep_png(path, _DEEP_PNG_RAWMODES[rawmode])
                orientation = image.getexif().get(0x0112, 1)
            else:
                image.load()
                loaded = None
        except ImageError:
            raise
        except EOFError as error:
            if index and not lenient and "truncated" not in str(error):
                raise ImageError(f"has no frame {index}") from None
            raise _Damaged(_pillow_reason(error, kind)) from None
        except MemoryError:
            raise ImageError("not enough memory to decode") from None
        except Exception as error:  # Pillow's decoders raise many types for damaged data
            raise _Damaged(_pillow_reason(error, kind)) from None
        notes = []
        if loaded is not None:
            if orientation in range(2, 9):
                loaded.data = np.ascontiguousarray(_orient(loaded.data, orientation))
                if loaded.alpha is not None:
                    loaded.alpha = np.ascontiguousarray(_orient(loaded.alpha, orientation))
        else:
            loaded = _pillow_converted(image, kind, notes)
    loaded.notes = tuple(_pillow_notes(caught) + notes + list(loaded.notes))
    return loaded


def _pillow_converted(image, kind, notes):
    """A decoded Pillow image, EXIF orientation applied, as a LoadedImage."""
    from PIL import ImageOps

    try:
        shown = ImageOps.exif_transpose(image)
    except Exception as error:
        shown = image
        notes.append(f"EXIF orientation unreadable, not applied: {_reason(error)}")
    try:
        return _from_pillow(shown)
    except MemoryError:
        raise ImageError("not enough memory to decode") from None
    except Exception as error:
        raise _Damaged(_pillow_reason(error, kind)) from None


def _deep_png(path, rawmodes):
    """A 16-bit colour or gray+alpha PNG at full depth (see _DEEP_PNG_RAWMODES)."""
    from PIL import Image

    planes = []
    for rawmode in rawmodes:
        with Image.open(path, formats=("PNG",)) as part:
            part.tile = [part.tile[0]._replace(args=rawmode)]
            part.load()
            planes.append(np.asarray(part).astype(np.uint16))
    if len(planes) == 2:
        values = (planes[0] << 8) | planes[1]
    else:  # gray+alpha as RGBA bytes: gray high, gray low, alpha high, alpha low
        raw = planes[0]
        values = np.stack([raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3]], axis=-1)
    data = values.astype(np.float32) * np.float32(1 / 65535)
    alpha = None
    if data.shape[2] in (2, 4):
        data, alpha = np.ascontiguousarray(data[..., :-1]), data[..., -1]
        if data.shape[2] == 1:
            data = data[..., 0]
    return LoadedImage(data, alpha, 16)


def _from_pillow(image):
    mode = image.mode
    if mode == "1":
        image = image.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGB")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    mode = image.mode
    array = np.asarray(image)
    if mode.startswith("I;16") or mode == "I":
        bits, scale = 16, 65535.0
    elif mode == "F":
        bits, scale = 32, 1.0
    else:
        bits, scale = 8, 255.0
    data = array.astype(np.float32)
    if scale != 1.0:
        data *= np.float32(1.0 / scale)
    notes = []
    if bits == 32:
        _finite(data, notes)
    alpha = None
    if mode in ("LA", "RGBA"):
        data, alpha = np.ascontiguousarray(data[..., :-1]), data[..., -1]
        if data.shape[2] == 1:
            data = data[..., 0]
    return LoadedImage(data, alpha, bits, tuple(notes))


def _png_damage(path):
    """The first structural problem of a PNG (truncation, a bad CRC), or None.

    Walks the chunks and checks each CRC without decoding, as libpng does; Pillow does
    not check the CRC of image data and reads some truncated files without a word.
    """
    with open(path, "rb") as handle:
        handle.seek(8)
        position = 8
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return f"truncated at byte {position:,}, before the IEND chunk"
            length, kind = struct.unpack(">I4s", header)
            if length > 2**31 - 1 or not kind.isalpha():
                return f"garbled chunk header at byte {position:,}"
            name = kind.decode("ascii")
            crc, remaining = zlib.crc32(kind), length
            while remaining:
                block = handle.read(min(remaining, 1 << 20))
                if not block:
                    return f"truncated inside the {name} chunk at byte {position:,}"
                crc, remaining = zlib.crc32(block, crc), remaining - len(block)
            stored = handle.read(4)
            if len(stored) < 4:
                return f"truncated inside the {name} chunk at byte {position:,}"
            if struct.unpack(">I", stored)[0] != crc:
                return f"bad CRC in the {name} chunk at byte {position:,}"
            if kind == b"IEND":
                return None
            position += 12 + length


def _reason(error):
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


# --- writing float images ----------------------------------------------------------


def save_float(path, array, fmt):
    """Write float32 values exactly, as ``.npy`` or a float32 TIFF, atomically.

    The TIFF is written by the writer of streamed outputs, in its layout
    (:func:`dilcli.io.regions.tiff_layout`): an image gives the same bytes whole or in
    bands.
    """
    array = np.ascontiguousarray(array, dtype=np.float32)
    if fmt == "tiff":
        from dilcli.io.regions import open_writer, tiff_layout

        options = tiff_layout(array.dtype)
        with open_writer(path, shape=array.shape, dtype=array.dtype, fmt="tiff", **options) as out:
            out.write_rows(0, array)
    elif fmt == "npy":
        with atomic_write(path) as handle:
            np.save(handle, array, allow_pickle=False)
    else:
        raise ValueError(f"float output format must be npy or tiff, got {fmt!r}")
