"""From float responses to pixels: the ``--map`` rules, quantizing, alpha, and how a
response becomes a file (:class:`Rendering`).

One documented rule per mapping (docs/design.md, section 14), the same for every image
of a batch unless a mapping says otherwise (``stretch``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dilcli.vocab import DIVERGING_COLORMAP, MAPPINGS, OUTPUT_FORMATS, STRETCH_PERCENTILE


@dataclass(frozen=True)
class Rendering:
    """How responses become files: format, pixel mapping, bit depth, compression."""

    fmt: str = "png"
    mapping: str | None = None  # None: 'abs' for signed kernels, else 'clip'
    gain: float = 1.0
    bits: int | None = None  # None: 16 for 16-bit input, else 8
    compression: int = 1

    def extension(self):
        return OUTPUT_FORMATS[self.fmt]

    @property
    def writes_pixels(self):
        """PNG, or TIFF with ``bits`` given: mapped pixels; else exact float32 values."""
        return self.fmt == "png" or (self.fmt == "tiff" and self.bits is not None)

    def pixel_bits(self, input_bits):
        return self.bits or (16 if input_bits == 16 else 8)

    def mapping_for(self, signed):
        return self.mapping or ("abs" if signed else "clip")

    def pixels(self, response, signed, input_bits, *, consume=False):
        """The pixels of ``response``, or of any band of its rows: every mapping but
        ``stretch`` is pointwise, with constants of the run."""
        mapping = self.mapping_for(signed)
        in_place = consume and response.dtype == np.float32 and mapping != "diverging"
        values = display_values(response, mapping, self.gain, out=response if in_place else None)
        return quantize(values, self.pixel_bits(input_bits), inplace=True)

    def save(self, path, response, image, signed, *, consume=False):
        """Write ``response`` (float) to ``path``; return the pixels written, or None.

        ``consume`` allows ``response`` to be overwritten (one image less in memory).
        """
        if not self.writes_pixels:
            from dilcli.io.images import save_float

            save_float(path, response, self.fmt)
            return None
        pixels = self.pixels(response, signed, image.bits, consume=consume)
        self.write_pixels(path, with_alpha(pixels, matching_alpha(image.alpha, pixels)))
        return pixels

    def write_pixels(self, path, pixels):
        """PNG, or a tiled TIFF written as the streaming path writes it."""
        if self.fmt == "tiff":
            from dilcli.io.regions import open_writer

            with open_writer(path, shape=pixels.shape, dtype=pixels.dtype, fmt="tiff") as out:
                out.write_rows(0, pixels)
        else:
            from dilcli.io.png import save_pixels

            save_pixels(path, pixels, compression=self.compression)


def matching_alpha(alpha, pixels):
    """``alpha`` if it has the rows and columns of ``pixels`` (mode 'same'), else None."""
    return alpha if alpha is not None and alpha.shape == pixels.shape[:2] else None


@np.errstate(over="ignore", invalid="ignore")  # float input can overflow to Inf; see below
def display_values(response, mapping, gain=1.0, scale=None, *, out=None):
    """Map a response to floats in [0, 1] for viewing; one documented rule each.

    - ``abs``: ``|y| * gain`` (edge strength; 1.0 is white).
    - ``signed``: ``0.5 + y * gain / 2`` (zero is mid-grey, negative darker).
    - ``clip``: ``y * gain`` (for non-negative kernels: blurs, magnitudes).
    - ``stretch``: ``|y| * gain / scale`` where ``scale`` is given (one value for a
      whole batch) or else this image's 99.9th percentile of ``|y|``.
    - ``diverging``: like ``signed`` through a blue-white-red colour map (RGB out;
      colour input is averaged over channels first).
    All results are clipped to [0, 1]; NaN (from Inf - Inf in huge float input) becomes 0.
    ``out`` (may be ``response`` itself, to save memory on large images) receives the
    values, except for ``diverging``.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}; got {mapping!r}")
    gain = np.float32(gain)
    if mapping == "diverging":
        signed = response if response.ndim == 2 else response.mean(axis=-1)
        return _diverging_colors(_no_nan(np.clip(signed * (gain / 2) + np.float32(0.5), 0, 1)))
    if out is None:
        out = np.empty(response.shape, np.float32)
    if mapping in ("abs", "stretch"):
        np.abs(response, out=out)
        if mapping == "stretch":
            if scale is None:
                scale = float(np.percentile(out, STRETCH_PERCENTILE))
            gain = np.float32(gain / scale) if scale > 0 else np.float32(0.0)
        np.multiply(out, gain, out=out)
    elif mapping == "signed":
        np.multiply(response, gain / 2, out=out)
        out += np.float32(0.5)
    else:
        np.multiply(response, gain, out=out)
    return _no_nan(np.clip(out, 0, 1, out=out))


def _no_nan(values):
    # np.min is NaN when any value is, and costs less than np.isnan(...).any()
    if values.size and np.isnan(values.min()):
        np.nan_to_num(values, copy=False, nan=0.0)
    return values


def colormap(values01, name, levels=1024):
    """RGB floats in [0, 1] for ``values01`` through the colour map ``name`` (cmap's
    names), looked up in a table of ``levels`` entries: every coloured picture of
    dilcli (diverging responses, effective receptive fields) goes through here."""
    from cmap import Colormap

    lut = Colormap(name).lut(levels)[:, :3].astype(np.float32)
    return lut[np.rint(np.clip(values01, 0, 1) * (levels - 1)).astype(np.intp)]


def _diverging_colors(values01):
    return colormap(values01, DIVERGING_COLORMAP)


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
