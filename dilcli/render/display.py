"""From float responses to pixels: the ``--map`` rules, quantizing, alpha, and how a
response becomes a file (:class:`Rendering`).

One documented rule per mapping (docs/design.md, section 14), the same for every image
of a batch unless a mapping says otherwise (``stretch``). Without ``--map`` the rule
and the tone scale come from the kernel or the stack alone (:class:`DefaultDisplay`,
:func:`kernel_display`, :func:`stack_displays`), never from the image.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace

import numpy as np

from dilcli.render import tone
from dilcli.vocab import (
    DEFAULT_MAPPING,
    DIVERGING_COLORMAP,
    LINEAR_DEFAULT_MAPPING,
    MAPPINGS,
    OUTPUT_FORMATS,
    STRETCH_PERCENTILE,
    TONE_MAPPINGS,
)


@dataclass(frozen=True)
class DefaultDisplay:
    """How one output is shown when ``--map`` is not given, from its kernel or stack.

    ``mapping`` is ``tone`` or ``clip`` (:func:`default_mapping`); ``scale`` is the
    tone scale ``s`` (:mod:`dilcli.render.tone`), used by the tone mappings whether
    they are the default or asked for.
    """

    mapping: str = LINEAR_DEFAULT_MAPPING
    scale: float = 0.0


def default_mapping(*, can_be_negative, gain):
    """``clip`` for a weighted mean of the input (a response that cannot be negative,
    with worst-case ``gain`` 1: blurs, the identity, the context-basic module), shown
    as the image it is; ``tone`` for everything else: responses that can be negative,
    and those that can exceed the input's range or only reach a fraction of it (the
    context-large module's layers hold the input times ``C / c``, down to 1/32)."""
    # 1e-9: sums of weights such as nine ninths land a rounding error off 1.
    if not can_be_negative and abs(gain - 1) <= 1e-9:
        return LINEAR_DEFAULT_MAPPING
    return DEFAULT_MAPPING


def kernel_display(kernel, dilation):
    """The :class:`DefaultDisplay` of ``kernel`` (a :class:`dilcli.core.kernels.Kernel`)
    at ``dilation``; computed once per kernel and dilation in a process."""
    key = tuple(
        (part.shape, np.ascontiguousarray(part, dtype=float).tobytes()) for part in kernel.parts
    )
    return _kernel_display(key, dilation)


@functools.lru_cache(maxsize=256)
def _kernel_display(key, dilation):
    from dilcli.core.kernels import Kernel

    kernel = Kernel("", tuple(np.frombuffer(data).reshape(shape) for shape, data in key))
    gain = tone.kernel_gain(kernel)
    mapping = default_mapping(can_be_negative=kernel.is_signed, gain=gain)
    return DefaultDisplay(mapping, tone.kernel_scale(kernel, dilation))


def stack_displays(layers, channels, *, input_negative=False):
    """The :class:`DefaultDisplay` of every layer's output of a stack.

    Whether a layer can be negative comes from its weights, biases and ReLUs
    (:func:`dilcli.core.stacks.can_be_negative`; ``input_negative`` for float data),
    its gain from :func:`dilcli.render.tone.stack_gains`, its scale from
    :func:`dilcli.render.tone.stack_scales`: of the channel mean for layers with other
    than 1 or 3 output channels, as pictures show them. Computed once per stack and
    channel count in a process.
    """
    digest = hashlib.sha256()
    for layer in layers:
        weights = np.ascontiguousarray(layer.weights, dtype=float)
        digest.update(repr((weights.shape, layer.dilation, bool(layer.truncate))).encode())
        digest.update(weights.tobytes())
        if layer.bias is not None:
            digest.update(np.ascontiguousarray(layer.bias, dtype=float).tobytes())
    key = (digest.hexdigest(), channels, bool(input_negative))
    if key not in _STACK_DISPLAYS:
        from dilcli.core.stacks import can_be_negative

        signs = can_be_negative(layers, input_negative=input_negative)
        gains = tone.stack_gains(layers)
        counts, average = channels, []
        for layer in layers:
            counts = layer.weights.shape[0] if np.ndim(layer.weights) == 4 else counts
            average.append(counts not in (1, 3))
        model = _affordable_model(layers, channels)
        scales = tone.stack_scales(layers, channels, model=model, average_channels=average)
        if len(_STACK_DISPLAYS) >= 32:
            _STACK_DISPLAYS.clear()
        _STACK_DISPLAYS[key] = tuple(
            DefaultDisplay(default_mapping(can_be_negative=negative, gain=gain), scale)
            for negative, gain, scale in zip(signs, gains, scales, strict=True)
        )
    return list(_STACK_DISPLAYS[key])


_STACK_DISPLAYS = {}  # stack digest, channels, flags: displays (one process's cache)
# The exact composition costs (non-zero taps x C_out x C_in) complex products per cell of
# the model's frequency grid, per layer. Past this many (a few seconds), wide mixing
# stacks (context-large on many channels, trained weights) use a coarser grid, down to
# 64 x 64. context-large's scales move by under 0.5 % (a laplacian stack's would by 20 %,
# but it never comes near the limit), well inside the 3x margin of docs/design.md, 14.
MAX_SCALE_PRODUCTS = 2e9
MIN_MODEL_SIZE = 64


def _affordable_model(layers, channels):
    products, width = 0, channels
    for layer in layers:
        weights = np.asarray(layer.weights)
        taps = int(
            np.count_nonzero(np.any(weights != 0, axis=(0, 1)) if weights.ndim == 4 else weights)
        )
        c_out = weights.shape[0] if weights.ndim == 4 else width
        products += taps * c_out * (weights.shape[1] if weights.ndim == 4 else 1)
        width = c_out
    size = tone.NATURAL_IMAGES.size
    while size > MIN_MODEL_SIZE and products * size * (size // 2 + 1) > MAX_SCALE_PRODUCTS:
        size //= 2
    return replace(tone.NATURAL_IMAGES, size=size)


def starlet_displays(levels, *, input_negative=False):
    """The :class:`DefaultDisplay` of the starlet's planes (signed: tone) and of its
    residual (a blur of the input: clip, unless the input can be negative)."""
    scales = tone.starlet_scales(levels)
    residual = default_mapping(can_be_negative=input_negative, gain=1.0)
    return [DefaultDisplay(DEFAULT_MAPPING, s) for s in scales[:-1]] + [
        DefaultDisplay(residual, scales[-1])
    ]


@dataclass(frozen=True)
class Rendering:
    """How responses become files: format, pixel mapping, bit depth, compression."""

    fmt: str = "png"
    mapping: str | None = None  # None: each output's DefaultDisplay decides
    gain: float = 1.0
    bits: int | None = None  # None: 16 for 16-bit input, else 8
    compression: int = 1

    def extension(self):
        return OUTPUT_FORMATS[self.fmt]

    @property
    def writes_pixels(self):
        """PNG, or TIFF and Zarr with ``bits`` given: mapped pixels; else exact float32."""
        return self.fmt == "png" or (self.fmt in ("tiff", "zarr") and self.bits is not None)

    def pixel_bits(self, input_bits):
        """8, or 16 for 16-bit inputs, unless ``bits`` says."""
        return self.bits or (16 if input_bits == 16 else 8)

    def pixels(self, response, shown, bits=8, *, consume=False):
        """``response`` mapped (``--map``, else ``shown.mapping``) and quantized: the
        pixels of a whole image or of any band of its rows (every mapping but
        ``stretch`` is pointwise, with constants of the run).

        ``shown`` is the output's :class:`DefaultDisplay`; ``consume`` allows
        ``response`` to be overwritten (one image less in memory).
        """
        mapping = self.mapping or shown.mapping
        in_place = consume and response.dtype == np.float32 and "diverging" not in mapping
        values = display_values(
            response,
            mapping,
            self.gain,
            shown.scale if mapping in TONE_MAPPINGS else None,
            out=response if in_place else None,
        )
        return quantize(values, bits, inplace=True)

    def save(self, path, response, image, shown, *, consume=False):
        """Write ``response`` (float) to ``path``; return the pixels written, or None.

        ``shown`` is the output's :class:`DefaultDisplay`; ``consume`` allows
        ``response`` to be overwritten (one image less in memory).
        """
        if not self.writes_pixels:
            if self.fmt == "zarr":
                self._write_regions(path, np.asarray(response, np.float32))
            else:
                from dilcli.io.images import save_float

                save_float(path, response, self.fmt)
            return None
        pixels = self.pixels(response, shown, self.pixel_bits(image.bits), consume=consume)
        self.write_pixels(path, with_alpha(pixels, matching_alpha(image.alpha, pixels)))
        return pixels

    def write_pixels(self, path, pixels):
        """PNG, or a tiled TIFF or Zarr store written as the streaming path writes it."""
        if self.fmt in ("tiff", "zarr"):
            self._write_regions(path, pixels)
        else:
            from dilcli.io.png import save_pixels

            save_pixels(path, pixels, compression=self.compression)

    def _write_regions(self, path, array):
        """``array`` through the streaming path's writer (:mod:`dilcli.io.regions`)."""
        from dilcli.io.regions import open_writer

        with open_writer(path, shape=array.shape, dtype=array.dtype, fmt=self.fmt) as out:
            out.write_rows(0, array)


def matching_alpha(alpha, pixels):
    """``alpha`` if it has the rows and columns of ``pixels`` (mode 'same'), else None."""
    return alpha if alpha is not None and alpha.shape == pixels.shape[:2] else None


@np.errstate(over="ignore", invalid="ignore")  # float input can overflow to Inf; see below
def display_values(response, mapping, gain=1.0, scale=None, *, out=None):
    """Map a response to floats in [0, 1] for viewing; one documented rule each.

    - ``tone``: ``1 - exp(-|y * gain| / scale)`` (:func:`dilcli.render.tone.tone_map`;
      ``scale`` is the kernel's or stack's ``s``, required; all 0 if ``scale <= 0``).
    - ``abs``: ``|y| * gain`` (edge strength; 1.0 is white).
    - ``signed``: ``0.5 + y * gain / 2`` (zero is mid-grey, negative darker).
    - ``clip``: ``y * gain`` (for non-negative kernels: blurs, magnitudes).
    - ``stretch``: ``|y| * gain / scale`` where ``scale`` is given (one value for a
      whole batch) or else this image's 99.9th percentile of ``|y|``.
    - ``diverging``: like ``signed`` through a blue-white-red colour map (RGB out;
      colour input is averaged over channels first).
    - ``signed-tone``, ``diverging-tone``: ``signed`` and ``diverging`` of
      ``sign(y) * tone``: ``0.5 +- (1 - exp(-|y * gain| / scale)) / 2``.
    All results are clipped to [0, 1]; NaN (from Inf - Inf in huge float input) becomes 0
    (mid-grey for the signed mappings' tone variants).
    ``out`` (may be ``response`` itself, to save memory on large images) receives the
    values, except for the diverging mappings.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}; got {mapping!r}")
    if mapping in TONE_MAPPINGS and scale is None:
        raise ValueError(f"mapping {mapping!r} needs the kernel's tone scale")
    gain = np.float32(gain)
    if "diverging" in mapping:
        signed = response if response.ndim == 2 else response.mean(axis=-1)
        if mapping == "diverging-tone":
            return _diverging_colors(_signed_tone(signed * gain, scale, None))
        return _diverging_colors(_no_nan(np.clip(signed * (gain / 2) + np.float32(0.5), 0, 1)))
    if out is None:
        out = np.empty(response.shape, np.float32)
    if mapping in ("tone", "signed-tone"):
        np.multiply(response, gain, out=out)
        if mapping == "signed-tone":
            return _signed_tone(out, scale, out)
        if not scale > 0:  # an all-zero kernel: nothing to show
            out[...] = 0
            return out
        return tone.tone_map(out, scale, out=out)
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


def _signed_tone(values, scale, out):
    """``0.5 + sign(v) (1 - exp(-|v| / scale)) / 2`` of float32 ``values``, in ``out``."""
    values = np.asarray(values, dtype=np.float32)
    if out is None:
        out = np.empty(values.shape, np.float32)
    negative = values < 0
    if scale > 0:
        tone.tone_map(values, scale, out=out)
    else:
        out[...] = 0
    np.multiply(out, np.float32(0.5), out=out)
    np.negative(out, out=out, where=negative)
    out += np.float32(0.5)
    return np.clip(out, 0, 1, out=out)


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
