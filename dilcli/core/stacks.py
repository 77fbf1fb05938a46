"""Stacks of dilated layers: the paper's context module, kernel stacks, the à trous wavelet.

A stack is a list of :class:`Layer`; :func:`iterate_layers` runs it and yields every
layer's output in turn. A layer either mixes channels like a conv layer (weights
``(C_out, C_in, k, k)``) or applies one kernel to each channel (weights ``(k, k)``).

Channel mixing is computed per kernel tap as one matrix product over channels::

    y[i, j, :] = sum_(a, b) x_ext[i + a*d, j + b*d, :] @ W[:, :, a, b].T

with ``x_ext`` the input extended once per layer (:func:`dilcli.conv.extend`) by the
boundary rule; ``constant`` with ``cval=0`` is a zero-padded conv framework's layer.
The per-channel case is :func:`dilcli.conv.dilated_correlate` itself.

Presets follow Table 1 of Yu & Koltun (2015) and docs/design.md (sections 9, 10):
:func:`context_basic` and :func:`context_large` with their identity initialisation,
:func:`kernel_stack` and :func:`random_stack` (the seed notebook's multi-scale stack),
:func:`stack_from_arrays` (trained weights) and :func:`starlet` (the B3-spline à trous
wavelet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dilcli.core.conv import MAX_DILATION, axis_geometry, dilated_correlate, extend
from dilcli.core.kernels import B3SPLINE

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
)
from dilcli.vocab import CONTEXT_LARGE_CHANNELS as LARGE_CHANNEL_FACTORS

# Output rows are mixed in strips whose temporaries stay small (and in cache).
_STRIP_BYTES = 1 << 21
# Pixels per matrix product of channel mixing: every product has this shape (the last
# one padded with zeros), because BLAS picks its kernel, and so its order of summation,
# by the shape: a product of another height can round differently. With one shape,
# a pixel's channels mix to the same bits wherever its rows are cut, which the
# streaming path (dilcli.core.tiling) relies on.
MATMUL_PIXELS = 1024
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


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: ``y = relu?(correlate(x, weights, dilation) + bias)``.

    Parameters
    ----------
    weights : ndarray
        ``(C_out, C_in, kh, kw)`` mixes channels like a conv layer; ``(kh, kw)``
        applies the same kernel to every channel (depthwise).
    dilation : int
        Spacing between kernel taps, >= 1.
    bias : ndarray, optional
        ``(C_out,)`` for a mixing layer; a scalar or one value per channel otherwise.
    truncate : bool
        Apply a ReLU (``max(y, 0)``) after the bias.
    """

    weights: np.ndarray
    dilation: int = 1
    bias: np.ndarray | None = None
    truncate: bool = False

    def __post_init__(self):
        weights = np.asarray(self.weights)
        if weights.ndim not in (2, 4) or weights.size == 0:
            raise ValueError(
                f"layer weights must be (C_out, C_in, k, k) or (k, k), got shape {weights.shape}"
            )
        if weights.dtype.kind not in "biuf" or not np.all(np.isfinite(weights)):
            raise ValueError("layer weights must be finite real numbers")
        dilation = self.dilation
        if isinstance(dilation, (bool, np.bool_)) or not isinstance(dilation, (int, np.integer)):
            raise ValueError(f"dilation must be a positive integer, got {dilation!r}")
        if dilation < 1:
            raise ValueError(f"dilation must be a positive integer, got {dilation!r}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "dilation", int(dilation))
        if self.bias is not None:
            bias = np.asarray(self.bias)
            if bias.dtype.kind not in "biuf" or not np.all(np.isfinite(bias)):
                raise ValueError("bias must be finite real numbers")
            if weights.ndim == 4 and bias.shape != (weights.shape[0],):
                raise ValueError(
                    f"bias of shape {bias.shape} does not fit weights {weights.shape}: "
                    f"expected ({weights.shape[0]},)"
                )
            if weights.ndim == 2 and bias.ndim > 1:
                raise ValueError(
                    f"bias of a per-channel layer must be 0-D or 1-D, got {bias.shape}"
                )
            object.__setattr__(self, "bias", bias)

    @property
    def mixes_channels(self):
        return self.weights.ndim == 4

    @property
    def kernel_shape(self):
        return self.weights.shape[-2:]

    @property
    def in_channels(self):
        """Input channels the weights expect, or None for a per-channel layer."""
        return self.weights.shape[1] if self.mixes_channels else None

    def out_channels(self, in_channels):
        return self.weights.shape[0] if self.mixes_channels else in_channels


# --- running a stack ----------------------------------------------------------------


def forward(x, layers, *, mode="same", boundary="reflect", cval=0.0, flip=False):
    """Every layer's output, as a list; see :func:`iterate_layers`.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> outputs = forward(x, context_basic(1))
    >>> len(outputs), bool(np.array_equal(outputs[-1][..., 0], x))
    (8, True)
    """
    return list(iterate_layers(x, layers, mode=mode, boundary=boundary, cval=cval, flip=flip))


def iterate_layers(x, layers, *, mode="same", boundary="reflect", cval=0.0, flip=False):
    """Run ``layers`` on ``x`` and yield each layer's output as it is computed.

    Parameters
    ----------
    x : array_like
        ``(H, W)`` (one channel) or ``(H, W, C)``.
    layers : sequence of Layer
    mode : {'same', 'valid', 'full'}
        Output size of each layer, as in :func:`dilcli.conv.dilated_correlate`.
    boundary : {'reflect', 'mirror', 'nearest', 'wrap', 'constant'}
        How each layer's input is extended; ``constant`` with ``cval=0`` is the zero
        padding of deep-learning frameworks.
    cval : float
        Value outside the input for ``boundary='constant'``.
    flip : bool
        Flip every kernel (true convolution).

    Yields
    ------
    ndarray
        float32 (float64 for float64 input). A mixing layer's output is
        ``(H, W, C_out)``; a per-channel layer's has its input's shape.

    Raises
    ------
    ChannelError
        Before any work, when the channel count of ``x`` does not fit the weights.
    """
    x = np.asarray(x)
    if x.ndim not in (2, 3) or 0 in x.shape:
        raise ValueError(
            f"input must be a non-empty (H, W) or (H, W, C) array, got shape {x.shape}"
        )
    if x.dtype.kind not in "biuf":
        raise ValueError(f"input must be real numbers, got dtype {x.dtype}")
    layers = list(layers)
    if not layers:
        raise ValueError("a stack needs at least one layer")
    check_channels(1 if x.ndim == 2 else x.shape[2], layers)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    x = np.ascontiguousarray(x, dtype=dtype)  # views (a channel, a Fortran array) too
    for layer in layers:
        x = apply_layer(x, layer, mode=mode, boundary=boundary, cval=cval, flip=flip)
        yield x


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


def apply_layer(x, layer, *, mode="same", boundary="reflect", cval=0.0, flip=False, dilation=None):
    """One layer on float ``x`` (``(H, W)`` or ``(H, W, C)``); see :func:`iterate_layers`.

    ``mode`` may be one per axis, and ``dilation`` (rows, columns) may replace the
    layer's own: :mod:`dilcli.core.tiling` computes rows it gathered that way.
    """
    dilation = layer.dilation if dilation is None else dilation
    if layer.mixes_channels:
        y = _mix_channels(x, layer.weights, dilation, mode, boundary, cval, flip)
    else:
        y = dilated_correlate(
            x, layer.weights, dilation, mode=mode, boundary=boundary, cval=cval, flip=flip
        )
    if layer.bias is not None:
        y += layer.bias.astype(y.dtype)
    if layer.truncate:
        np.maximum(y, 0, out=y)
    return y


def _mix_channels(x, weights, dilation, mode, boundary, cval, flip):
    """Sum over taps of (shifted input, pixels x C_in) @ (tap weights, C_in x C_out).

    The taps of one kernel row share their input rows: one matrix product of those rows
    with the row's tap matrices side by side, ``(C_in, taps * C_out)``, serves them all,
    and each tap's part is added shifted by its column offset. No input is copied.
    """
    if x.ndim == 2:
        x = x[..., np.newaxis]
    c_out, c_in, kh, kw = weights.shape
    if flip:
        weights = weights[:, :, ::-1, ::-1]
    # taps[a, b] is W[:, :, a, b].T, in the input's float type; all-zero taps are skipped.
    taps = weights.transpose(2, 3, 1, 0).astype(x.dtype)
    row_mode, column_mode = (mode, mode) if isinstance(mode, str) else mode
    row_dilation, dilation = (dilation, dilation) if np.ndim(dilation) == 0 else dilation
    top, bottom, height = axis_geometry(x.shape[0], kh, row_dilation, row_mode)
    left, right, width = axis_geometry(x.shape[1], kw, dilation, column_mode)
    padded = np.ascontiguousarray(extend(x, [(top, bottom), (left, right)], boundary, cval))
    padded_width = padded.shape[1]
    kernel_rows = []
    for a in range(kh):
        columns = [b for b in range(kw) if np.any(taps[a, b])]
        if columns:
            kernel_rows.append((a, columns, np.concatenate([taps[a, b] for b in columns], axis=1)))

    out = np.zeros((height, width, c_out), dtype=x.dtype)
    if not kernel_rows:
        return out
    widest = max(matrix.shape[1] for _, _, matrix in kernel_rows)
    row_bytes = padded_width * max(c_in, widest) * x.dtype.itemsize
    strip = max(1, _STRIP_BYTES // row_bytes)
    scratch = np.empty(min(strip, height) * padded_width * widest, dtype=x.dtype)
    pad_in = np.empty((MATMUL_PIXELS, c_in), dtype=x.dtype)
    pad_out = np.empty(MATMUL_PIXELS * widest, dtype=x.dtype)
    for start in range(0, height, strip):
        stop = min(start + strip, height)
        acc = out[start:stop]
        for a, columns, matrix in kernel_rows:
            rows = padded[start + a * row_dilation : stop + a * row_dilation].reshape(-1, c_in)
            product = scratch[: rows.shape[0] * matrix.shape[1]].reshape(rows.shape[0], -1)
            flat = pad_out[: MATMUL_PIXELS * matrix.shape[1]]
            _fixed_matmul(rows, matrix, product, pad_in, flat.reshape(MATMUL_PIXELS, -1))
            product = product.reshape(stop - start, padded_width, len(columns), c_out)
            for n, b in enumerate(columns):
                acc += product[:, b * dilation : b * dilation + width, n]
    return out


def _fixed_matmul(rows, matrix, out, pad_in, pad_out):
    """``out = rows @ matrix`` by products of MATMUL_PIXELS rows each (see there)."""
    count = rows.shape[0]
    full = count - count % MATMUL_PIXELS
    for start in range(0, full, MATMUL_PIXELS):
        stop = start + MATMUL_PIXELS
        np.matmul(rows[start:stop], matrix, out=out[start:stop])
    if full < count:
        rest = count - full
        pad_in[:rest] = rows[full:]
        pad_in[rest:] = 0
        np.matmul(pad_in, matrix, out=pad_out)
        out[full:] = pad_out[:rest]


def can_be_negative(layers, *, input_negative=False):
    """Per layer, whether its output can hold negative values (for choosing a display).

    Decided from the weights, not the data, so every input of a batch is shown alike.
    """
    negative, result = input_negative, []
    for layer in layers:
        signed_weights = bool(np.any(layer.weights < 0))
        signed_bias = layer.bias is not None and bool(np.any(layer.bias < 0))
        negative = not layer.truncate and (negative or signed_weights or signed_bias)
        result.append(negative)
    return result


# --- stacks users can ask for ---------------------------------------------------------


def _truncations(count, truncate):
    """ReLU after every layer but the last (Table 1), or nowhere."""
    return [truncate and i < count - 1 for i in range(count)]


def context_basic(channels, *, truncate=True):
    """The basic context module for ``channels`` channels, identity-initialised.

    ``k(t, a) = 1[t = 0] 1[a = b]``: every layer passes its input through, so the module
    returns its (non-negative) input unchanged; the ReLUs clip negative values.
    """
    channels = _positive(channels, "channels")
    layers = []
    for size, dilation, relu in zip(
        CONTEXT_KERNEL_SIZES,
        CONTEXT_DILATIONS,
        _truncations(len(CONTEXT_DILATIONS), truncate),
        strict=True,
    ):
        weights = np.zeros((channels, channels, size, size))
        weights[:, :, size // 2, size // 2] = np.eye(channels)
        layers.append(Layer(weights, dilation, truncate=relu))
    return layers


def context_large(channels, *, seed=0, noise=LARGE_NOISE, truncate=True):
    """The large context module (2C, 2C, 4C, ..., 32C, 32C, C channels), identity-initialised.

    ``k(t, a) = C / c_(l+1)`` where ``t = 0`` and ``floor(a C / c_l) = floor(b C / c_(l+1))``,
    else ``N(0, sigma^2)`` noise with ``sigma = noise * C / c_(l+1)`` from ``seed``. With
    ``noise=0`` the module passes its non-negative input through.
    """
    channels = _positive(channels, "channels")
    rng = np.random.default_rng(seed)
    counts = [channels] + [factor * channels for factor in LARGE_CHANNEL_FACTORS]
    relus = _truncations(len(CONTEXT_DILATIONS), truncate)
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
        layers.append(Layer(weights, dilation, truncate=relus[layer_index]))
    return layers


def kernel_stack(kernel, dilations, *, truncate=False):
    """The same 2-D ``kernel`` at each of ``dilations``, applied to every channel."""
    kernel = np.asarray(kernel, dtype=float)
    if kernel.ndim != 2:
        raise ValueError(f"a stack kernel must be 2-D, got shape {kernel.shape}")
    dilations = list(dilations)
    relus = _truncations(len(dilations), truncate)
    return [Layer(kernel, d, truncate=relu) for d, relu in zip(dilations, relus, strict=True)]


def random_stack(dilations, *, size=3, seed=42, truncate=False):
    """Small random per-channel kernels, one per layer, as the seed notebook makes them.

    ``np.random.seed(seed)`` then ``np.random.randn(size, size) * 0.1`` for each layer
    in turn, so ``seed=42`` gives the notebook's kernels.
    """
    if isinstance(size, int):
        size = (size, size)
    state = np.random.RandomState(seed)
    dilations = list(dilations)
    relus = _truncations(len(dilations), truncate)
    return [
        Layer(state.randn(*size) * RANDOM_KERNEL_SCALE, d, truncate=relu)
        for d, relu in zip(dilations, relus, strict=True)
    ]


def stack_from_arrays(arrays, *, truncate=True):
    """A stack from named arrays, as stored in a weights ``.npz`` file.

    ``dilations`` (one int per layer), ``weight_0 ... weight_{L-1}`` shaped
    ``(C_out, C_in, k, k)`` and optional ``bias_0 ...`` shaped ``(C_out,)``. With
    ``truncate``, a ReLU follows every layer but the last. Any other name is refused,
    so a mistyped array is not silently ignored. The limits (``MAX_WEIGHTS_*`` above)
    are checked by :func:`check_weights_header` on each array.
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
    relus = _truncations(count, truncate)
    layers = []
    for i in range(count):
        if f"weight_{i}" not in arrays:
            raise ValueError(f"weights lack 'weight_{i}' ('dilations' lists {count} layers)")
        weights = np.asarray(arrays[f"weight_{i}"])
        if weights.ndim != 4:
            raise ValueError(f"'weight_{i}' must be (C_out, C_in, k, k), got shape {weights.shape}")
        try:
            layer = Layer(weights, dilations[i], arrays.get(f"bias_{i}"), relus[i])
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
                f"'{name}' has {shape[2]}x{shape[3]} kernels, over the limit of "
                f"{MAX_WEIGHTS_KERNEL_SIDE} taps a side"
            )


def starlet_layers(levels):
    """The à trous smoothing stack: the B3-spline at dilations 1, 2, 4, ... 2^(levels-1)."""
    levels = _positive(levels, "levels")
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
    previous = previous.astype(np.float64 if previous.dtype == np.float64 else np.float32)
    planes = []
    for smooth in iterate_layers(previous, starlet_layers(levels), boundary=boundary, cval=cval):
        planes.append(previous - smooth)
        previous = smooth
    return planes, previous


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --- 1-D stacks: signals --------------------------------------------------------------


@dataclass(frozen=True)
class SignalLayer:
    """One output of :func:`signal_layers`: its input position ``start`` and its taps."""

    dilation: int
    response: np.ndarray
    start: int  # input position the first output sample is aligned with
    weights: np.ndarray  # the taps' weights (flipped for true convolution)
    offsets: np.ndarray  # where the taps read, relative to the output sample


# Applied after each layer of a signal stack; each maps 0 to 0 and never grows |y|.
SIGNAL_ACTIVATIONS = {
    "none": lambda y: y,
    "relu": lambda y: np.maximum(y, 0, out=y),
    "tanh": lambda y: np.tanh(y, out=y),
}
assert tuple(SIGNAL_ACTIVATIONS) == ACTIVATIONS  # the vocabulary names them


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
    ``none``) follows each layer of a stack.
    """
    from dilcli.core.conv import dilated_correlate

    weights = np.asarray(weights, dtype=float)
    if flip:
        weights = weights[::-1]
    if activation not in SIGNAL_ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {', '.join(SIGNAL_ACTIVATIONS)}; got {activation!r}"
        )
    layers, current, start = [], data, 0
    for dilation in dilations:
        span = (len(weights) - 1) * dilation + 1
        before = span - 1 if mode == "causal" else (span - 1) // 2
        response = dilated_correlate(
            current if stack else data, weights, dilation, mode=mode, boundary=boundary, cval=cval
        )
        shift = {"valid": (span - 1) // 2, "full": (span - 1) // 2 - (span - 1)}.get(mode, 0)
        if stack:
            response = SIGNAL_ACTIVATIONS[activation](response)
            start, current = start + shift, response
        offsets = np.arange(len(weights)) * dilation - before
        layers.append(SignalLayer(dilation, response, start if stack else shift, weights, offsets))
    return layers
