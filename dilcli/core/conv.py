"""Dilated correlation of 1-D signals and 2-D images.

The definition (docs/design.md, sections 2-4), per spatial axis::

    y[i] = sum_t w[t] * x[i + t*d - o]

with ``o`` set by the output ``mode`` and ``x`` extended outside its domain by the
``boundary`` rule, using scipy.ndimage's names and meanings.

The kernel's number of dimensions says how many leading axes of ``x`` are spatial; one
extra trailing axis is channels, to which the kernel applies independently.
"""

from __future__ import annotations

import numpy as np

from dilcli.core import engine
from dilcli.core.engine import boundary_indices
from dilcli.core.layers import padding_before
from dilcli.vocab import (
    BOUNDARIES,
    CAUSAL_BOUNDARIES,
    DEFAULT_BOUNDARY,
    DEFAULT_CAUSAL_BOUNDARY,
    MAX_DILATION,
    SIGNAL_MODES,
    choices_text,
    shape_text,
)

# Every mode; 'causal' is for 1-D signals only.
MODES = SIGNAL_MODES
# MAX_DILATION (vocab): 2**31 - 1, the int32 range that PyTorch and cuDNN use too. With
# it, positions ``i + t*d - o`` stay far inside int64 for any kernel that fits in
# memory, so the engines can never overflow; larger values raise ValueError.
# Mode 'full' grows the output by the dilated span on each axis: it may add at most
# this many bytes beyond the input's size (a small input must not cost gigabytes).
MAX_FULL_GROWTH_BYTES = 1 << 30


def dilated_correlate(
    x,
    kernel,
    dilation=1,
    *,
    mode="same",
    boundary=None,
    cval=0.0,
    flip=False,
):
    """Correlate ``x`` with a dilated ``kernel``.

    Parameters
    ----------
    x : array_like
        ``(N,)`` or ``(N, C)`` for a 1-D kernel; ``(H, W)`` or ``(H, W, C)`` for a
        2-D kernel. Trailing channels are filtered independently.
    kernel : array_like or Kernel
        1-D or 2-D weights, any (odd or even) length per axis; or a
        :class:`dilcli.core.kernels.Kernel` (``named_kernel("sobel")``), applied as
        :func:`apply_kernel` does (a gradient pair gives its magnitude).
    dilation : int or tuple of int
        Spacing between kernel taps, 1 to ``MAX_DILATION`` (2**31 - 1); one value, or
        one per spatial axis.
    mode : {'same', 'valid', 'full', 'causal'} or tuple of them
        Output size, one for every axis or one per spatial axis (the streaming path
        of :mod:`dilcli.core.tiling` computes ``'valid'`` on rows it gathered).
        ``same`` keeps the input size and centres the kernel, with the extra sample
        of an even span on the right (PyTorch's ``padding='same'``);
        ``valid`` uses only positions where the dilated kernel fits;
        ``full`` returns every position it overlaps (refused when that adds more than
        ``MAX_FULL_GROWTH_BYTES``, 1 GiB, to the input's size); ``causal`` (1-D only)
        makes ``y[i]`` depend on ``x[<= i]`` alone.
    boundary : {'reflect', 'mirror', 'nearest', 'wrap', 'constant'}, optional
        How ``x`` is extended, as in scipy.ndimage: ``reflect`` (d c b a | a b c d),
        ``mirror`` (d c b | a b c d), ``nearest``, ``wrap``, ``constant`` (``cval``).
        Defaults to ``reflect``, or to ``constant`` in ``causal`` mode, where only
        ``constant`` and ``nearest`` are allowed (the others look ahead).
    cval : float
        Value outside the input when ``boundary='constant'``.
    flip : bool
        Reverse the kernel on every axis first: true convolution for odd kernels.

    Returns
    -------
    ndarray
        float32 for float32 (or narrower) input, float64 for float64 input.

    Examples
    --------
    >>> dilated_correlate([0, 0, 1, 0, 0, 0, 0], [1, 2, 3], dilation=2, boundary="constant")
    array([3., 0., 2., 0., 1., 0., 0.])
    """
    if hasattr(kernel, "parts"):  # a dilcli Kernel: named_kernel("laplacian"), say
        return apply_kernel(x, kernel, dilation, mode=mode, boundary=boundary, cval=cval, flip=flip)
    x = np.asarray(x)
    kernel = np.asarray(kernel)
    dtype = float_dtype(x.dtype)
    spatial = kernel.ndim
    if spatial not in (1, 2):
        raise ValueError(f"kernel must be 1-D or 2-D, got shape {kernel.shape}")
    if x.ndim not in (spatial, spatial + 1):
        expected = "(N,) or (N, C)" if spatial == 1 else "(H, W) or (H, W, C)"
        raise ValueError(
            f"input of shape {x.shape} does not fit a {spatial}-D kernel: expected {expected}"
        )
    if min(x.shape[:spatial], default=1) < 1 or min(kernel.shape) < 1:
        raise ValueError(f"input {x.shape} and kernel {kernel.shape} must not be empty")
    if not np.all(np.isfinite(kernel)):
        raise ValueError("kernel weights must be finite numbers")
    dilations = normalize_dilation(dilation, spatial)
    modes = _axis_modes(mode, spatial)
    for axis_mode in dict.fromkeys(modes):
        boundary = check_mode_boundary(axis_mode, boundary, spatial)

    x = np.ascontiguousarray(x, dtype=dtype)  # the engines read rows in place
    kernel = kernel.astype(dtype)
    if flip:
        kernel = kernel[(slice(None, None, -1),) * spatial]

    geometry = [
        axis_geometry(n, k, d, m) for n, k, d, m in zip(x.shape, kernel.shape, dilations, modes)
    ]
    out_shape = tuple(size for _, _, size in geometry) + x.shape[spatial:]
    _check_growth(x, out_shape, dtype)
    # The engine works on (rows, columns, channels): a 1-D signal is one column.
    if spatial == 1:
        x3 = x.reshape(x.shape[0], 1, -1)
        kernel, dilations = kernel[:, np.newaxis], (dilations[0], 1)
        geometry.append((0, 0, 1))
    else:
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
    out = np.empty((geometry[0][2], geometry[1][2], x3.shape[2]), dtype=dtype)
    offsets = (geometry[0][0], geometry[1][0])
    engine.correlate(x3, kernel, dilations, offsets, boundary, dtype.type(cval), out)
    return out.reshape(out_shape)


def apply_kernel(x, kernel, dilation=1, **options):
    """Response of ``x`` to a :class:`dilcli.kernels.Kernel` at ``dilation``.

    A gradient pair (``sobel``, ``scharr``, ``prewitt``) gives the magnitude
    ``hypot(g_x, g_y)`` of its two responses; other options as in
    :func:`dilated_correlate`.
    """
    responses = [dilated_correlate(x, part, dilation, **options) for part in kernel.parts]
    if len(responses) == 1:
        return responses[0]
    return np.hypot(responses[0], responses[1], out=responses[0])


def normalize_dilation(dilation, ndim):
    """One positive int per spatial axis, from an int or a sequence."""
    # Element by element: numpy would turn (1, np.uint64(2**63)) into floats.
    if isinstance(dilation, np.ndarray):
        values = tuple(dilation.ravel().tolist())
    elif isinstance(dilation, (list, tuple)):
        values = tuple(dilation)
    else:
        values = (dilation,)
    values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise ValueError(f"dilation must be one int or {ndim} ints, got {dilation!r}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"dilation must be a positive integer, got {value!r}")
        if value > MAX_DILATION:
            raise ValueError(
                f"dilation must be at most 2**31 - 1 = {MAX_DILATION:,}, got {value:,}"
            )
    return values


def _axis_modes(mode, spatial):
    """One mode per spatial axis, from one mode or a tuple of them."""
    if isinstance(mode, (tuple, list)):
        if len(mode) != spatial:
            raise ValueError(f"mode must be one mode or {spatial}, got {mode!r}")
        return tuple(mode)
    return (mode,) * spatial


def _check_growth(x, out_shape, dtype):
    """Refuse an output that adds more than MAX_FULL_GROWTH_BYTES to the input's size."""
    out_values = 1
    for size in out_shape:
        out_values *= size
    grown = (out_values - x.size) * dtype.itemsize
    if grown > MAX_FULL_GROWTH_BYTES:
        raise ValueError(
            f"the output would be {shape_text(out_shape)} values, {grown:,} bytes more than "
            f"the input, over the limit of {MAX_FULL_GROWTH_BYTES:,} (the dilated kernel is too "
            "wide for mode 'full')"
        )


def axis_geometry(n, k, d, mode):
    """Padding before and after, and output length, for one axis.

    ``o`` is the offset in ``y[i] = sum_t w[t] x[i + t*d - o]``: the padding before.
    """
    span = (k - 1) * d + 1
    before = padding_before(span, mode)
    size = {"valid": n - span + 1, "full": n + span - 1}.get(mode, n)
    if size < 1:
        raise ValueError(
            f"'valid' output would be empty: the dilated kernel spans {span} samples "
            f"but the input has only {n} along that axis"
        )
    after = size + span - 1 - before - n
    return before, after, size


def extend(x, pads, boundary, cval=0.0):
    """Extend the leading axes of ``x`` by ``pads`` ((before, after) per axis).

    Index maps follow scipy.ndimage's definitions, so they hold for any pad width,
    also wider than the input (numpy.pad's names differ: its 'reflect' is ndimage's
    'mirror', its 'symmetric' ndimage's 'reflect').
    """
    if all(b == 0 and a == 0 for b, a in pads):
        return x
    if boundary == "constant":
        widths = list(pads) + [(0, 0)] * (x.ndim - len(pads))
        return np.pad(x, widths, mode="constant", constant_values=cval)
    indices = [
        boundary_indices(np.arange(-b, n + a), n, boundary) for (b, a), n in zip(pads, x.shape)
    ]
    return x[np.ix_(*indices)] if len(indices) > 1 else x[indices[0]]


def float_dtype(dtype):
    """The float type computed in: float32 for float32 and narrower input, else float64."""
    if dtype.kind == "c" or dtype.kind not in "biuf":
        raise ValueError(f"input must be real numbers, got dtype {dtype}")
    return (
        np.dtype(np.float64) if dtype == np.float64 or dtype.itemsize > 4 else np.dtype(np.float32)
    )


def check_mode_boundary(mode, boundary, spatial):
    """The boundary to use for ``mode`` (None: its default); ValueError if they clash.

    Causal filtering (1-D only) must not look ahead, so it allows only the boundaries
    that extend the past without the future (docs/design.md, section 11).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "causal":
        if spatial != 1:
            raise ValueError("mode 'causal' is for 1-D signals only")
        boundary = DEFAULT_CAUSAL_BOUNDARY if boundary is None else boundary
        if boundary not in CAUSAL_BOUNDARIES:
            raise ValueError(
                f"mode 'causal' allows boundary {choices_text(CAUSAL_BOUNDARIES)} only "
                f"('{boundary}' would look ahead)"
            )
    boundary = DEFAULT_BOUNDARY if boundary is None else boundary
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}; got {boundary!r}")
    return boundary
