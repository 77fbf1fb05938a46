"""Stacks of dilated layers, and the one runner for them: 2-D images and feature maps,
1-D signals; the paper's context module, kernel stacks, the à trous wavelet.

A stack is a list of :class:`~dilcli.core.layers.Layer`; :func:`iterate_layers` runs it
(on any number of spatial axes the layers work on: ``(N,)``/``(N, C)`` signals,
``(H, W)``/``(H, W, C)`` images) and yields every layer's output in turn. A layer either
mixes channels like a conv layer (weights ``(C_out, C_in, k, k)``, or
``(C_out, C_in, k)`` in 1-D) or applies one kernel to each channel (weights ``(k, k)``
or ``(k,)``); its bias, activation (``relu``,
``tanh`` or ``none``) and stride are its own.

Channel mixing is one matrix product over taps and channels at once::

    y[i, j, :] = sum_(a, b) x_ext[i + a*d, j + b*d, :] @ W[:, :, a, b].T

with ``x_ext`` the input extended by the boundary rule; ``constant`` with ``cval=0`` is
a zero-padded conv framework's layer. The values the non-zero taps read are copied
side by side for a chunk of output pixels (im2col) and multiplied by the stacked tap
weights in products of MATMUL_PIXELS pixels (:func:`_mix_channels`).
The per-channel case is :func:`dilcli.conv.dilated_correlate` itself.

Presets follow Table 1 of Yu & Koltun (2015) and docs/design.md (sections 9, 10):
:func:`context_basic` and :func:`context_large` with their identity initialisation,
:func:`kernel_stack` and :func:`random_stack` (the seed notebook's multi-scale stack),
:func:`stack_from_arrays` (trained weights), :func:`starlet` (the B3-spline à trous
wavelet) and :func:`signal_stack` (1-D taps at each dilation, as ``dilcli signal
--stack`` runs them; :func:`signal_layers` places each output on the input's axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dilcli.core.conv import (
    MAX_DILATION,
    axis_geometry,
    check_mode_boundary,
    dilated_correlate,
    float_dtype,
)

# Per-thread buffers reused across chunks (fresh allocations would page-fault).
from dilcli.core.engine import _scratch, boundary_indices
from dilcli.core.kernels import B3SPLINE

# The one Layer of every stack (and of the receptive-field maths): its old home is here.
from dilcli.core.layers import (
    Layer,
    aligned_offset,
    padding_before,
    positive_int,
    relu_keyword,
)
from dilcli.core.parallel import parallel_map, threads

# Table 1 of the paper (the vocabulary holds it once): dilation and kernel size per
# layer, and the large module's channel counts as multiples of the input's C. The large
# module's noise: sigma = LARGE_NOISE * C / c_(l+1), well below the identity weight
# C / c_(l+1) as the paper asks. The seed notebook's random kernels:
# np.random.seed(42); np.random.randn(k, k) * RANDOM_KERNEL_SCALE.
from dilcli.vocab import (
    ACTIVATIONS,
    CONTEXT_DILATIONS,
    CONTEXT_KERNEL_SIZES,
    LARGE_NOISE,
    RANDOM_KERNEL_SCALE,
    shape_text,
)
from dilcli.vocab import CONTEXT_LARGE_CHANNELS as LARGE_CHANNEL_FACTORS

# Bytes of the matrix of tap values (im2col) that channel mixing fills per chunk of
# output pixels: a few MiB, so it and the rows it copies from stay small.
_CHUNK_BYTES = 1 << 22
# Pixels per matrix product of channel mixing: every product has this shape (the last
# one padded with zeros), because BLAS picks its kernel, and so its order of summation,
# by the shape: a product of another height can round differently. With one shape,
# a pixel's channels mix to the same bits wherever its rows are cut, which the
# streaming path (dilcli.core.tiling) relies on.
MATMUL_PIXELS = 1024
# OpenBLAS runs a product on one thread up to this many multiply-adds (65536 times its
# GEMM_MULTITHREAD_THRESHOLD, 4): see product_pixels.
SINGLE_THREAD_PRODUCT = 1 << 18
# Limits on trained weights (stack_from_arrays; ``dilcli context --weights`` checks them
# from each array's header, before anything is decompressed): the arrays together at
# most MAX_WEIGHTS_BYTES (256 MiB) decompressed; at most MAX_WEIGHTS_LAYERS layers; a
# kernel side of at most MAX_WEIGHTS_KERNEL_SIDE (the largest published large-kernel
# CNNs use 31 to 51); dilations up to dilcli.conv.MAX_DILATION.
MAX_WEIGHTS_BYTES = 1 << 28
MAX_WEIGHTS_LAYERS = 256
MAX_WEIGHTS_KERNEL_SIDE = 64


class ChannelError(ValueError):
    """An input whose channel count does not fit the stack's weights."""


# --- running a stack ----------------------------------------------------------------


def forward(x, layers, *, mode="same", boundary=None, cval=0.0, flip=False):
    """Every layer's output, as a list; see :func:`iterate_layers`.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> outputs = forward(x, context_basic(1))
    >>> len(outputs), bool(np.array_equal(outputs[-1][..., 0], x))
    (8, True)
    """
    return list(iterate_layers(x, layers, mode=mode, boundary=boundary, cval=cval, flip=flip))


def iterate_layers(x, layers, *, mode="same", boundary=None, cval=0.0, flip=False):
    """Run ``layers`` on ``x`` and yield each layer's output as it is computed.

    The one runner of every stack: 2-D (images, feature maps) and 1-D (signals).

    Parameters
    ----------
    x : array_like
        ``(H, W)`` or ``(H, W, C)`` for 2-D layers; ``(N,)`` or ``(N, C)`` for 1-D ones.
    layers : sequence of Layer
        With weights, all 1-D or all 2-D; each layer's ``activation`` follows its bias
        and its ``stride`` keeps every ``stride``-th output position.
    mode : {'same', 'valid', 'full', 'causal'}
        Output size of each layer, as in :func:`dilcli.conv.dilated_correlate`
        (``causal`` for 1-D layers).
    boundary : {'reflect', 'mirror', 'nearest', 'wrap', 'constant'}, optional
        How each layer's input is extended; ``constant`` with ``cval=0`` is the zero
        padding of deep-learning frameworks. Default: ``reflect``, or ``constant`` in
        ``causal`` mode (:func:`dilcli.conv.check_mode_boundary`).
    cval : float
        Value outside the input for ``boundary='constant'``.
    flip : bool
        Flip every kernel (true convolution).

    Yields
    ------
    ndarray
        float32, or float64 for float64 (and 64-bit integer) input, as
        :func:`dilcli.conv.dilated_correlate`. A mixing layer's output is
        ``(H, W, C_out)`` (``(N, C_out)`` in 1-D); a per-channel layer's has its input's
        shape.

    Raises
    ------
    ChannelError
        Before any work, when the channel count of ``x`` does not fit the weights.
    """
    x = np.asarray(x)
    layers = list(layers)
    if not layers:
        raise ValueError("a stack needs at least one layer")
    spatial = spatial_axes(layers)
    if x.ndim not in (spatial, spatial + 1) or 0 in x.shape:
        shapes = "(N,) or (N, C)" if spatial == 1 else "(H, W) or (H, W, C)"
        raise ValueError(f"input must be a non-empty {shapes} array, got shape {x.shape}")
    dtype = float_dtype(x.dtype)
    boundary = check_mode_boundary(mode, boundary, spatial)
    check_channels(1 if x.ndim == spatial else x.shape[-1], layers)
    x = np.ascontiguousarray(x, dtype=dtype)  # views (a channel, a Fortran array) too
    for layer in layers:
        x = apply_layer(x, layer, mode=mode, boundary=boundary, cval=cval, flip=flip)
        yield x


def spatial_axes(layers):
    """The spatial axes (1 or 2) every layer of a runnable stack works on."""
    found = set()
    for number, layer in enumerate(layers, 1):
        if layer.weights is None:
            raise ValueError(f"layer {number} has no weights (only its size): it cannot run")
        found.add(layer.ndim)
    if len(found) > 1:
        raise ValueError("a stack's layers must be all 1-D or all 2-D")
    return found.pop()


def check_channels(channels, layers):
    """Raise :class:`ChannelError` unless ``channels`` input channels fit ``layers``."""
    for number, layer in enumerate(layers, 1):
        if layer.mixes_channels and layer.in_channels != channels:
            if number == 1:
                raise ChannelError(
                    f"input has {channels} channel{'s' * (channels != 1)}, but the weights "
                    f"expect {layer.in_channels} (layer 1 weights {layer.weights.shape})"
                )
            raise ChannelError(
                f"layer {number} expects {layer.in_channels} input channels but layer "
                f"{number - 1} gives {channels}"
            )
        if (
            not layer.mixes_channels
            and layer.bias is not None
            and layer.bias.size not in (1, channels)
        ):
            raise ChannelError(
                f"layer {number} has {layer.bias.size} biases for {channels} channels"
            )
        channels = layer.out_channels(channels)
    return channels


# After a layer's bias; each maps 0 to 0 and never grows |y|. In place.
ACTIVATION_FUNCTIONS = {
    "none": lambda y: y,
    "relu": lambda y: np.maximum(y, 0, out=y),
    "tanh": lambda y: np.tanh(y, out=y),
}
assert tuple(ACTIVATION_FUNCTIONS) == ACTIVATIONS  # the vocabulary names them
SIGNAL_ACTIVATIONS = ACTIVATION_FUNCTIONS  # its name before the stacks had one runner


def apply_layer(x, layer, *, mode="same", boundary=None, cval=0.0, flip=False, dilation=None):
    """One layer on float ``x``; see :func:`iterate_layers`.

    ``mode`` may be one per axis, and ``dilation`` (rows, columns) may replace the
    layer's own: :mod:`dilcli.core.tiling` computes rows it gathered that way.
    """
    dilation = layer.dilation if dilation is None else dilation
    if layer.mixes_channels:
        if isinstance(mode, str):
            boundary = check_mode_boundary(mode, boundary, layer.ndim)
        # Bias and activation follow each chunk while it is in cache (the same
        # operations on the same values), unless a stride drops outputs first.
        finish = (lambda y: _bias_and_activation(y, layer)) if layer.stride == 1 else None
        if layer.ndim == 1:  # a signal is an image one column wide: (N, 1, C)
            columns = x.reshape(x.shape[0], 1, -1)
            weights = layer.weights[..., np.newaxis]
            y = _mix_channels(columns, weights, dilation, mode, boundary, cval, flip, finish)
            y = y.reshape(y.shape[0], -1)
        else:
            y = _mix_channels(x, layer.weights, dilation, mode, boundary, cval, flip, finish)
        if finish is not None:
            return y
    else:
        y = dilated_correlate(
            x, layer.weights, dilation, mode=mode, boundary=boundary, cval=cval, flip=flip
        )
    if layer.stride > 1:
        y = np.ascontiguousarray(y[(slice(None, None, layer.stride),) * layer.ndim])
    return _bias_and_activation(y, layer)


def _bias_and_activation(y, layer):
    """``layer``'s bias, then its activation, on ``y`` in place."""
    if layer.bias is not None:
        y += layer.bias.astype(y.dtype)
    return ACTIVATION_FUNCTIONS[layer.activation](y)


def _mix_channels(x, weights, dilation, mode, boundary, cval, flip, finish=None):
    """Channel mixing as one matrix product per MATMUL_PIXELS output pixels (im2col).

    Output pixels are taken in row-major order, a chunk at a time. For each chunk, the
    input values every non-zero tap reads are copied side by side into a matrix of
    ``(pixels, taps * C_in)`` (im2col), and one product with the taps' weights stacked
    as ``(taps * C_in, C_out)`` gives the chunk's outputs: the sum over taps and input
    channels happens inside BLAS, at its speed. Only the rows a chunk reads are
    extended by the boundary rule (never a padded copy of the whole input), so memory
    follows the chunk, not the image: a band of rows costs the same buffers as a whole
    image. ``finish`` (in place, on a chunk's ``(pixels, C_out)`` outputs) follows each
    chunk's products.
    """
    if x.ndim == 2:
        x = x[..., np.newaxis]
    c_out, c_in, kh, kw = weights.shape
    if flip:
        weights = weights[:, :, ::-1, ::-1]
    row_mode, column_mode = (mode, mode) if isinstance(mode, str) else mode
    row_dilation, dilation = (dilation, dilation) if np.ndim(dilation) == 0 else dilation
    top, _, height = axis_geometry(x.shape[0], kh, row_dilation, row_mode)
    left, _, width = axis_geometry(x.shape[1], kw, dilation, column_mode)
    out = np.empty((height, width, c_out), dtype=x.dtype)
    # All-zero taps (most of an identity-initialised module's) are skipped.
    taps = [(a, b) for a in range(kh) for b in range(kw) if np.any(weights[:, :, a, b])]
    if not taps:
        out.fill(0)
        if finish is not None:
            finish(out.reshape(-1, c_out))
        return out
    matrix = np.concatenate([weights[:, :, a, b].T for a, b in taps]).astype(x.dtype)
    geometry = _ChunkGeometry(x, top, row_dilation, left, width, dilation, boundary, cval)
    product = product_pixels(matrix.shape[0], c_out)
    chunk = _chunk_pixels(height * width, matrix.nbytes // c_out, product)
    flat = out.reshape(-1, c_out)

    def run(start):
        stop = min(start + chunk, flat.shape[0])
        columns = _scratch("columns", (chunk, len(taps), c_in), x.dtype)
        geometry.fill(columns, taps, start, stop)
        count = stop - start
        full = count - count % product
        products = columns.reshape(chunk, -1)
        for offset in range(0, full, product):
            np.matmul(
                products[offset : offset + product],
                matrix,
                out=flat[start + offset : start + offset + product],
            )
        if full < count:  # the last product is padded with zeros to the same shape
            rest = products[full : full + product]
            rest[count - full :] = 0
            tail = _scratch("tail", (product, c_out), x.dtype)
            np.matmul(rest, matrix, out=tail)
            flat[start + full : stop] = tail[: count - full]
        if finish is not None:
            finish(flat[start:stop])

    starts = range(0, flat.shape[0], chunk)
    parallel_map(run, starts, min(threads(), len(starts)))
    return out


def product_pixels(rows, columns):
    """Output pixels per matrix product ``(pixels, rows) @ (rows, columns)`` of a layer.

    At most MATMUL_PIXELS, and small enough for BLAS to run the product on the calling
    thread (its own threads spin-wait between products, and on cores shared with other
    work lose most of their speed): chunks run on dilcli's threads instead. A layer's
    products all have this one shape (see MATMUL_PIXELS).
    """
    fitting = SINGLE_THREAD_PRODUCT // (rows * columns)
    return max(16, min(MATMUL_PIXELS, fitting) // 16 * 16)


def _chunk_pixels(pixels, pixel_bytes, product):
    """Output pixels per chunk of channel mixing: whole products of ``product`` pixels,
    about _CHUNK_BYTES of tap values, and no more products than ``pixels`` need."""
    products = min(max(1, _CHUNK_BYTES // (product * pixel_bytes)), -(-pixels // product))
    return product * products


def mixing_scratch_bytes(layer, rows, width, itemsize):
    """Bytes :func:`apply_layer` holds beside its input and output while it mixes the
    channels of ``rows`` x ``width`` output pixels: a chunk of tap values and the
    input rows of one kernel row that the chunk reads (copied only at the top and
    bottom edges), on every thread that mixes; 0 for a layer that does not mix
    channels. The streaming path's memory estimate counts them."""
    if not layer.mixes_channels:
        return 0
    c_out, c_in = layer.weights.shape[:2]
    taps = int(np.count_nonzero(np.any(layer.weights, axis=(0, 1)))) or 1
    product = product_pixels(taps * c_in, c_out)
    chunk = _chunk_pixels(rows * width, taps * c_in * itemsize, product)
    span = (layer.kernel_shape[-1] - 1) * layer.dilation + 1
    spanned_rows = -(-chunk // max(width, 1)) + 1
    values = (chunk * taps + spanned_rows * (width + span)) * c_in + product * c_out
    workers = min(threads(), -(-rows * width // chunk))
    return values * itemsize * workers


class _ChunkGeometry:
    """Copies the input values the taps read for a run of output pixels (see
    :func:`_mix_channels`): input rows mapped by the boundary rule, then columns copied
    as they are where a tap reads inside the input, mapped only at the borders."""

    def __init__(self, x, top, row_dilation, left, width, dilation, boundary, cval):
        self.x, self.top, self.row_dilation = x, top, row_dilation
        self.left, self.width, self.dilation = left, width, dilation
        self.boundary, self.cval = boundary, cval

    def input_rows(self, first, last):
        """Input rows ``first..last - 1`` (any integers) by the boundary rule."""
        x, height = self.x, self.x.shape[0]
        if first >= 0 and last <= height:
            return x[first:last]
        if self.boundary != "constant":
            return x[boundary_indices(np.arange(first, last), height, self.boundary)]
        rows = np.full((last - first,) + x.shape[1:], self.cval, dtype=x.dtype)
        lo, hi = max(first, 0), min(last, height)
        if lo < hi:
            rows[lo - first : hi - first] = x[lo:hi]
        return rows

    def copy_columns(self, target, rows, begin, end, offset):
        """``target[:, j]`` = column ``begin + j + offset - left`` of ``rows``, extended
        by the boundary rule, for ``j < end - begin``."""
        columns = rows.shape[1]
        lo, hi = begin + offset - self.left, end + offset - self.left
        inner_lo, inner_hi = max(lo, 0), min(hi, columns)
        if inner_lo < inner_hi:
            target[:, inner_lo - lo : inner_hi - lo] = rows[:, inner_lo:inner_hi]
        for border_lo, border_hi in ((lo, min(hi, 0)), (max(lo, columns), hi)):
            if border_lo >= border_hi:
                continue
            part = target[:, border_lo - lo : border_hi - lo]
            if self.boundary == "constant":
                part[...] = self.cval
            else:
                mapped = boundary_indices(np.arange(border_lo, border_hi), columns, self.boundary)
                part[...] = rows[:, mapped]

    def fill(self, columns, taps, start, stop):
        """``columns[p, t]`` = the input tap ``t`` reads for output pixel ``start + p``."""
        width = self.width
        first_row, last_row = start // width, (stop - 1) // width + 1
        # Pieces of the run: (destination start, output row, column start, column stop);
        # whole rows in the middle go as one block.
        pieces = []
        position = start
        while position < stop:
            row, column = divmod(position, width)
            if column == 0 and stop - position >= width:
                rows = (stop - position) // width
                pieces.append((position - start, row, rows, None))
                position += rows * width
            else:
                end = min(stop, (row + 1) * width)
                pieces.append((position - start, row, column, end - row * width))
                position = end
        kernel_row, source = None, None
        for t, (a, b) in enumerate(taps):
            if a != kernel_row:  # one kernel row's input rows at a time
                shift = a * self.row_dilation - self.top
                kernel_row, source = a, self.input_rows(first_row + shift, last_row + shift)
            offset = b * self.dilation
            for destination, row, begin, end in pieces:
                local = row - first_row
                if end is None:  # ``begin`` whole rows: one block copy
                    block = columns[destination : destination + begin * width]
                    target = block.reshape(begin, width, *columns.shape[1:])[:, :, t]
                    self.copy_columns(target, source[local : local + begin], 0, width, offset)
                else:
                    target = columns[destination : destination + end - begin, t]
                    self.copy_columns(
                        target[np.newaxis], source[local : local + 1], begin, end, offset
                    )


def can_be_negative(layers, *, input_negative=False):
    """Per layer, whether its output can hold negative values (for choosing a display).

    Decided from the weights, not the data, so every input of a batch is shown alike.
    """
    negative, result = input_negative, []
    for layer in layers:
        signed_weights = bool(np.any(layer.weights < 0))
        signed_bias = layer.bias is not None and bool(np.any(layer.bias < 0))
        negative = not layer.relu and (negative or signed_weights or signed_bias)
        result.append(negative)
    return result


# --- stacks users can ask for ---------------------------------------------------------


def _relus(count, relu):
    """ReLU after every layer but the last (Table 1), or nowhere."""
    return [bool(relu) and i < count - 1 for i in range(count)]


def context_basic(channels, *, relu=True, truncate=None):
    """The basic context module for ``channels`` channels, identity-initialised.

    ``k(t, a) = 1[t = 0] 1[a = b]``: every layer passes its input through, so the module
    returns its (non-negative) input unchanged; the ReLUs clip negative values.
    ``relu=False`` drops them (``truncate`` is its deprecated name).
    """
    channels = positive_int(channels, "channels")
    relus = _relus(len(CONTEXT_DILATIONS), relu_keyword(relu, truncate))
    layers = []
    for size, dilation, relu_after in zip(
        CONTEXT_KERNEL_SIZES, CONTEXT_DILATIONS, relus, strict=True
    ):
        weights = np.zeros((channels, channels, size, size))
        weights[:, :, size // 2, size // 2] = np.eye(channels)
        layers.append(Layer(weights, dilation, relu=relu_after))
    return layers


def context_large(channels, *, seed=0, noise=LARGE_NOISE, relu=True, truncate=None):
    """The large context module (2C, 2C, 4C, ..., 32C, 32C, C channels), identity-initialised.

    ``k(t, a) = C / c_(l+1)`` where ``t = 0`` and ``floor(a C / c_l) = floor(b C / c_(l+1))``,
    else ``N(0, sigma^2)`` noise with ``sigma = noise * C / c_(l+1)`` from ``seed``. With
    ``noise=0`` the module passes its non-negative input through. ``relu`` as in
    :func:`context_basic`.
    """
    channels = positive_int(channels, "channels")
    rng = np.random.default_rng(seed)
    counts = [channels] + [factor * channels for factor in LARGE_CHANNEL_FACTORS]
    relus = _relus(len(CONTEXT_DILATIONS), relu_keyword(relu, truncate))
    layers = []
    for layer_index, (size, dilation) in enumerate(
        zip(CONTEXT_KERNEL_SIZES, CONTEXT_DILATIONS, strict=True)
    ):
        c_in, c_out = counts[layer_index], counts[layer_index + 1]
        scale = channels / c_out
        weights = (
            rng.normal(0.0, noise * scale, size=(c_out, c_in, size, size))
            if noise
            else np.zeros((c_out, c_in, size, size))
        )
        group_in = np.arange(c_in) * channels // c_in
        group_out = np.arange(c_out) * channels // c_out
        same_group = group_out[:, np.newaxis] == group_in[np.newaxis, :]
        centre = weights[:, :, size // 2, size // 2]
        centre[same_group] = scale
        layers.append(Layer(weights, dilation, relu=relus[layer_index]))
    return layers


def kernel_stack(kernel, dilations, *, relu=False, truncate=None):
    """The same 2-D ``kernel`` at each of ``dilations``, applied to every channel; with
    ``relu``, a ReLU after every layer but the last."""
    kernel = np.asarray(kernel, dtype=float)
    if kernel.ndim != 2:
        raise ValueError(f"a stack kernel must be 2-D, got shape {kernel.shape}")
    dilations = list(dilations)
    relus = _relus(len(dilations), relu_keyword(relu, truncate))
    return [Layer(kernel, d, relu=after) for d, after in zip(dilations, relus, strict=True)]


def random_stack(dilations, *, size=3, seed=42, relu=False, truncate=None):
    """Small random per-channel kernels, one per layer, as the seed notebook makes them.

    ``np.random.seed(seed)`` then ``np.random.randn(size, size) * 0.1`` for each layer
    in turn, so ``seed=42`` gives the notebook's kernels. ``relu`` as in
    :func:`kernel_stack`.
    """
    if isinstance(size, int):
        size = (size, size)
    state = np.random.RandomState(seed)
    dilations = list(dilations)
    relus = _relus(len(dilations), relu_keyword(relu, truncate))
    return [
        Layer(state.randn(*size) * RANDOM_KERNEL_SCALE, d, relu=after)
        for d, after in zip(dilations, relus, strict=True)
    ]


def stack_from_arrays(arrays, *, relu=True, truncate=None):
    """A stack from named arrays, as stored in a weights ``.npz`` file.

    ``dilations`` (one int per layer), ``weight_0 ... weight_{L-1}`` shaped
    ``(C_out, C_in, k, k)`` and optional ``bias_0 ...`` shaped ``(C_out,)``. With
    ``relu`` (``truncate``, its deprecated name), a ReLU follows every layer but the
    last. Any other name is refused, so a mistyped array is not silently ignored. The
    limits (``MAX_WEIGHTS_*`` above) are checked by :func:`check_weights_header` on each array.
    """
    arrays = dict(arrays)
    for name, array in arrays.items():
        array = np.asarray(array)
        check_weights_header(name, array.shape, array.dtype)
    if "dilations" not in arrays:
        raise ValueError("weights need an array 'dilations' (one int per layer)")
    dilations = np.asarray(arrays["dilations"])
    if dilations.ndim != 1 or dilations.size == 0 or dilations.dtype.kind not in "iu":
        raise ValueError(
            f"'dilations' must be a 1-D array of integers, got {dilations.dtype} {dilations.shape}"
        )
    count = dilations.size
    too_large = dilations[dilations > MAX_DILATION]
    if too_large.size:
        raise ValueError(
            f"'dilations' holds {int(too_large[0]):,}; a dilation must be at most 2**31 - 1 "
            f"= {MAX_DILATION:,}"
        )
    expected = (
        {"dilations"} | {f"weight_{i}" for i in range(count)} | {f"bias_{i}" for i in range(count)}
    )
    unknown = sorted(set(arrays) - expected)
    if unknown:
        raise ValueError(
            f"unexpected array {unknown[0]!r}: 'dilations' lists {count} layers, so the arrays "
            f"are weight_0..weight_{count - 1} and optional bias_0..bias_{count - 1}"
        )
    relus = _relus(count, relu_keyword(relu, truncate))
    layers = []
    for i in range(count):
        if f"weight_{i}" not in arrays:
            raise ValueError(f"weights lack 'weight_{i}' ('dilations' lists {count} layers)")
        weights = np.asarray(arrays[f"weight_{i}"])
        if weights.ndim != 4:
            raise ValueError(f"'weight_{i}' must be (C_out, C_in, k, k), got shape {weights.shape}")
        try:
            layer = Layer(weights, dilations[i], bias=arrays.get(f"bias_{i}"), relu=relus[i])
        except ValueError as error:
            raise ValueError(f"layer {i} ('weight_{i}'): {error}") from None
        if layers and layers[-1].weights.shape[0] != weights.shape[1]:
            raise ValueError(
                f"'weight_{i}' expects {weights.shape[1]} input channels but 'weight_{i - 1}' "
                f"gives {layers[-1].weights.shape[0]}"
            )
        layers.append(layer)
    return layers


def check_weights_header(name, shape, dtype):
    """The limits of one array of a weights file, from its name, shape and dtype alone.

    Raises ValueError naming the array and the limit; called on each ``.npz`` member's
    header before its data is read, and by :func:`stack_from_arrays`.
    """
    if dtype.hasobject:
        return  # the reader refuses it: Python objects are never unpickled
    if dtype.kind not in "biuf" or dtype.fields:
        raise ValueError(f"'{name}' holds {dtype} values, not real numbers")
    if name == "dilations" and len(shape) == 1 and shape[0] > MAX_WEIGHTS_LAYERS:
        raise ValueError(
            f"'dilations' lists {shape[0]:,} layers, over the limit of {MAX_WEIGHTS_LAYERS}"
        )
    if name.startswith("weight_") and len(shape) == 4:
        side = max(shape[2], shape[3])
        if side > MAX_WEIGHTS_KERNEL_SIDE:
            raise ValueError(
                f"'{name}' has {shape_text(shape[2:])} kernels, over the limit of "
                f"{MAX_WEIGHTS_KERNEL_SIDE} taps a side"
            )


def starlet_layers(levels):
    """The à trous smoothing stack: the B3-spline at dilations 1, 2, 4, ... 2^(levels-1)."""
    levels = positive_int(levels, "levels")
    return [Layer(B3SPLINE, 2**j) for j in range(levels)]


def starlet(x, levels, *, boundary="reflect", cval=0.0):
    """The starlet (B3-spline à trous) wavelet transform of ``x``.

    ``c_0 = x``, ``c_(j+1)`` is ``c_j`` smoothed by the B3-spline at dilation ``2^j``,
    ``w_(j+1) = c_j - c_(j+1)``; then ``x = c_J + sum_j w_j`` to float rounding.

    Returns
    -------
    planes : list of ndarray
        ``w_1 ... w_J``, finest first, each shaped like ``x``.
    residual : ndarray
        The smooth residual ``c_J``.

    Examples
    --------
    >>> x = np.random.default_rng(0).random((16, 16))
    >>> planes, residual = starlet(x, 3)
    >>> bool(np.allclose(residual + sum(planes), x))
    True
    """
    previous = np.asarray(x)
    previous = previous.astype(float_dtype(previous.dtype))
    planes = []
    for smooth in iterate_layers(previous, starlet_layers(levels), boundary=boundary, cval=cval):
        planes.append(previous - smooth)
        previous = smooth
    return planes, previous


# --- 1-D stacks: signals --------------------------------------------------------------


def signal_stack(weights, dilations, *, activation="none", flip=False):
    """The layers of a 1-D stack: the taps ``weights`` at each of ``dilations``, with
    ``activation`` after each; ``flip`` reverses the taps (true convolution)."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 1:
        raise ValueError(f"a signal kernel must be 1-D, got shape {weights.shape}")
    if flip:
        weights = weights[::-1]
    return [Layer(weights, dilation, activation=activation) for dilation in dilations]


@dataclass(frozen=True)
class LayerOutput:
    """A layer's ``response`` to a 1-D input, and where it sits on the input's axis:
    output sample ``i`` lines up with input sample ``start + i``."""

    layer: Layer
    response: np.ndarray
    start: int
    mode: str = "same"

    @property
    def dilation(self):
        return self.layer.dilation

    @property
    def weights(self):
        """The taps as they are applied (flipped for true convolution)."""
        return self.layer.weights

    @property
    def offsets(self):
        """Where the taps read, relative to the output sample they make."""
        layer = self.layer
        return np.arange(layer.kernel) * layer.dilation - aligned_offset(layer.span, self.mode)


SignalLayer = LayerOutput  # its name before the stacks had one Layer


def signal_layers(
    data,
    weights,
    dilations,
    *,
    mode="same",
    boundary=None,
    cval=0.0,
    flip=False,
    stack=False,
    activation="none",
):
    """Filter ``data`` at each dilation, or through a stack of them (``stack``).

    Output sample ``i`` lines up with input sample ``start + i``: ``same`` and
    ``causal`` outputs with the input, ``valid`` and ``full`` as crops and extensions of
    ``same``, so one time axis serves them all. ``activation`` (``relu``, ``tanh`` or
    ``none``) follows each layer of a stack; without ``stack`` it must be ``none``.

    Returns
    -------
    list of LayerOutput
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    if activation != "none" and not stack:
        raise ValueError("an activation applies between the layers of a stack: add stack=True")
    layers = signal_stack(weights, dilations, activation=activation, flip=flip)
    return signal_outputs(data, layers, mode=mode, boundary=boundary, cval=cval, stack=stack)


def signal_outputs(data, layers, *, mode="same", boundary=None, cval=0.0, stack=False):
    """Run 1-D ``layers`` on ``data`` one after another (``stack``), or each on ``data``
    itself, and place every output on the input's axis (see :func:`signal_layers`).

    Returns
    -------
    list of LayerOutput
    """
    layers = list(layers)
    if not layers:
        return []
    if any(layer.stride != 1 for layer in layers):
        raise ValueError("signal outputs keep every sample: strides above 1 do not apply")
    options = dict(mode=mode, boundary=boundary, cval=cval)
    if stack:
        responses = iterate_layers(data, layers, **options)
    else:  # each dilation on the input itself
        responses = (next(iterate_layers(data, [layer], **options)) for layer in layers)
    outputs, start = [], 0
    for layer, response in zip(layers, responses, strict=True):
        shift = aligned_offset(layer.span, mode) - padding_before(layer.span, mode)
        start = start + shift if stack else shift
        outputs.append(LayerOutput(layer, response, start, mode))
    return outputs
