"""Images in and out: decode to float, map responses to pixels, encode atomically.

The only module that reads or writes image files. Integer images become float32 in
[0, 1] on load (8-bit / 255, 16-bit / 65535); alpha is split off, never filtered.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dilcli.atomic import atomic_write

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".npy"}
)
OUTPUT_FORMATS = ("png", "tiff", "npy")
MAPPINGS = ("abs", "signed", "clip", "stretch", "diverging")
DEFAULT_MAX_PIXELS = 250_000_000
DIVERGING_COLORMAP = "colorbrewer:RdBu_r"
STRETCH_PERCENTILE = 99.9


class ImageError(Exception):
    """A file that cannot be read or written as an image; the message says why."""


@dataclass
class LoadedImage:
    """Decoded pixels as float32 ``(H, W)`` or ``(H, W, C)``, plus alpha apart."""

    data: np.ndarray
    alpha: np.ndarray | None
    bits: int  # 8 or 16 for integer images, 32 for float data


def load_image(path, *, frame=0, max_pixels=DEFAULT_MAX_PIXELS):
    """Decode ``path`` (an image, or an ``.npy`` array) to a :class:`LoadedImage`.

    EXIF orientation is applied; palettes and CMYK become RGB(A); 1-bit becomes gray.
    ``max_pixels`` (0 for no limit) is checked from the header, before decoding.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _load_npy(path, max_pixels)
    if path.suffix.lower() in (".tif", ".tiff"):
        loaded = _load_tiff_exact(path, max_pixels)
        if loaded is not None:
            return loaded
    return _load_with_pillow(path, frame, max_pixels)


def _check_pixels(width, height, max_pixels):
    if max_pixels and width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (raise it with --max-pixels, 0 for no limit)"
        )


def _load_npy(path, max_pixels):
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ImageError(f"not a readable .npy array: {_reason(error)}") from None
    if array.ndim not in (2, 3) or array.dtype.kind not in "biuf" or 0 in array.shape:
        raise ImageError(
            f"expected a non-empty real (H, W) or (H, W, C) array, got {array.dtype} {array.shape}"
        )
    _check_pixels(array.shape[1], array.shape[0], max_pixels)
    return LoadedImage(array.astype(np.float32), None, 32)


def _load_tiff_exact(path, max_pixels):
    """16-bit colour and float TIFFs at full precision (Pillow drops bits); None otherwise."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.dtype is None or (page.dtype.itemsize == 1 and page.photometric != 5):
                return None  # plain 8-bit: Pillow handles it, with EXIF orientation
            _check_pixels(page.imagewidth, page.imagelength, max_pixels)
            if page.photometric == 5:  # CMYK
                return None
            array = page.asarray()
            axes = page.axes
    except ImageError:
        raise
    except Exception:
        return None  # let Pillow try and report
    if "S" in axes and axes.index("S") < axes.index("Y"):
        array = np.moveaxis(array, axes.index("S"), -1)
    array = np.squeeze(array)
    if array.ndim not in (2, 3):
        return None
    if array.dtype.kind == "f":
        data, bits = array.astype(np.float32), 32
    else:
        bits = 16 if array.dtype.itemsize >= 2 else 8
        data = array.astype(np.float32) / np.float32(2**bits - 1)
    alpha = None
    if data.ndim == 3 and data.shape[2] in (2, 4):
        data, alpha = data[..., :-1], data[..., -1]
        if data.shape[2] == 1:
            data = data[..., 0]
    return LoadedImage(np.ascontiguousarray(data), alpha, bits)


def _load_with_pillow(path, frame, max_pixels):
    from PIL import Image, ImageOps

    # dilcli checks its own limit from the header; Pillow's warning would only repeat it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                _check_pixels(image.width, image.height, max_pixels)
                if frame:
                    image.seek(frame)
                image.load()
                image = ImageOps.exif_transpose(image)
                return _from_pillow(image)
        except ImageError:
            raise
        except Image.DecompressionBombError as error:
            raise ImageError(_reason(error)) from None
        except FileNotFoundError:
            raise ImageError("no such file") from None
        except IsADirectoryError:
            raise ImageError("is a folder, not an image") from None
        except PermissionError:
            raise ImageError("permission denied") from None
        except Image.UnidentifiedImageError:
            raise ImageError("not an image Pillow can identify (unknown or damaged format)") from None
        except EOFError:
            raise ImageError(f"has no frame {frame}") from None
        except MemoryError:
            raise ImageError("not enough memory to decode") from None
        except Exception as error:  # Pillow's decoders raise many types for damaged data
            raise ImageError(f"cannot decode: {_reason(error)}") from None


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
    alpha = None
    if mode in ("LA", "RGBA"):
        data, alpha = np.ascontiguousarray(data[..., :-1]), data[..., -1]
        if data.shape[2] == 1:
            data = data[..., 0]
    return LoadedImage(data, alpha, bits)


def _reason(error):
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def load_kernel_file(path, ndim=2):
    """A custom kernel from a ``.npy`` array or a ``.csv``/``.txt`` text file.

    The kernel is named after the file's stem, so outputs say which kernel made them.
    """
    from dilcli.kernels import kernel_from_array, parse_kernel_text

    path = Path(path)
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in path.stem) or "custom"
    try:
        if path.suffix.lower() == ".npy":
            kernel = kernel_from_array(np.load(path, allow_pickle=False), ndim=ndim)
        else:
            kernel = parse_kernel_text(path.read_text(encoding="utf-8"), ndim=ndim)
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise ValueError(f"cannot read kernel file {path}: {_reason(error)}") from None
    return type(kernel)(name, kernel.parts, kernel.description)


# --- from responses to pixels -------------------------------------------------------


def display_values(response, mapping, gain=1.0, scale=None, *, out=None):
    """Map a response to floats in [0, 1] for viewing; one documented rule each.

    - ``abs``: ``|y| * gain`` (edge strength; 1.0 is white).
    - ``signed``: ``0.5 + y * gain / 2`` (zero is mid-grey, negative darker).
    - ``clip``: ``y * gain`` (for non-negative kernels: blurs, magnitudes).
    - ``stretch``: ``|y| / scale`` where ``scale`` is given (one value for a whole
      batch) or else this image's 99.9th percentile of ``|y|``.
    - ``diverging``: like ``signed`` through a blue-white-red colour map (RGB out;
      colour input is averaged over channels first).
    All results are clipped to [0, 1]. ``out`` (may be ``response`` itself, to save
    memory on large images) receives the values, except for ``diverging``.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}; got {mapping!r}")
    gain = np.float32(gain)
    if mapping == "diverging":
        signed = response if response.ndim == 2 else response.mean(axis=-1)
        return _diverging_colors(np.clip(signed * (gain / 2) + np.float32(0.5), 0, 1))
    if out is None:
        out = np.empty(response.shape, np.float32)
    if mapping in ("abs", "stretch"):
        np.abs(response, out=out)
        if mapping == "stretch":
            if scale is None:
                scale = float(np.percentile(out, STRETCH_PERCENTILE))
            gain = np.float32(1.0 / scale) if scale > 0 else np.float32(0.0)
        np.multiply(out, gain, out=out)
    elif mapping == "signed":
        np.multiply(response, gain / 2, out=out)
        out += np.float32(0.5)
    else:
        np.multiply(response, gain, out=out)
    return np.clip(out, 0, 1, out=out)


def _diverging_colors(values01):
    from cmap import Colormap

    lut = Colormap(DIVERGING_COLORMAP).lut(1024)[:, :3].astype(np.float32)
    return lut[np.rint(values01 * 1023).astype(np.intp)]


def quantize(values01, bits=8, *, inplace=False):
    """Floats in [0, 1] to uint8 or uint16, rounding to nearest.

    ``inplace`` lets float32 ``values01`` be overwritten instead of copied.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    top = np.float32(255 if bits == 8 else 65535)
    if inplace and values01.dtype == np.float32:
        scaled = np.multiply(values01, top, out=values01)
    else:
        scaled = np.multiply(values01, top, dtype=np.float32)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8 if bits == 8 else np.uint16)


def with_alpha(pixels, alpha):
    """Append ``alpha`` (float in [0, 1]) as the last channel of ``pixels``."""
    if alpha is None:
        return pixels
    bits = 8 if pixels.dtype == np.uint8 else 16
    alpha_pixels = quantize(alpha, bits)
    channels = pixels if pixels.ndim == 3 else pixels[..., np.newaxis]
    return np.concatenate([channels, alpha_pixels[..., np.newaxis]], axis=-1)


# --- writing -------------------------------------------------------------------------


def save_pixels(path, pixels, *, compression=1):
    """Write uint8/uint16 pixels ``(H, W)`` or ``(H, W, 1..4)`` as PNG, atomically.

    ``compression`` is zlib's level, 0-9: 1 is several times faster than Pillow's
    default of 6 for files a few percent larger.
    """
    with atomic_write(path) as handle:
        if pixels.dtype == np.uint8:
            from PIL import Image

            image = Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels)
            image.save(handle, format="PNG", compress_level=compression)
        else:
            handle.write(encode_png(pixels, compression))


def save_float(path, array, fmt):
    """Write float32 values exactly, as ``.npy`` or a float32 TIFF, atomically."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    with atomic_write(path) as handle:
        if fmt == "npy":
            np.save(handle, array, allow_pickle=False)
        elif fmt == "tiff":
            import io

            import tifffile

            buffer = io.BytesIO()  # tifffile wants a named file or a seekable buffer
            rgb = array.ndim == 3 and array.shape[2] == 3
            tifffile.imwrite(buffer, array, photometric="rgb" if rgb else "minisblack")
            handle.write(buffer.getbuffer())
        else:
            raise ValueError(f"float output format must be npy or tiff, got {fmt!r}")


def encode_png(pixels, compression=1):
    """PNG bytes for uint8/uint16 gray, gray+alpha, RGB or RGBA pixels.

    Pillow cannot write 16-bit colour PNGs; this small encoder (filter type 0 on every
    row, one zlib stream) writes every combination the PNG specification allows.
    """
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    depth = 8 if pixels.dtype == np.uint8 else 16
    rows = np.ascontiguousarray(pixels, dtype=">u2" if depth == 16 else np.uint8)
    raw = rows.reshape(height, -1).view(np.uint8)
    filtered = np.concatenate([np.zeros((height, 1), np.uint8), raw], axis=1)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(filtered.tobytes(), compression)),
            chunk(b"IEND", b""),
        ]
    )
