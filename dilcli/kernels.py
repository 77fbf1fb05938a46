"""Named kernels and custom kernels parsed from text; no I/O.

A :class:`Kernel` is one weight array, or an x/y pair whose responses combine into a
gradient magnitude (``sobel``, ``scharr``, ``prewitt``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAPLACIAN = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=float)
LAPLACIAN4 = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], dtype=float)
PREWITT_X = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=float)
GAUSSIAN = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
BOX = np.full((3, 3), 1 / 9.0)
B3SPLINE_1D = np.array([1, 4, 6, 4, 1]) / 16.0  # the starlet's scaling filter
B3SPLINE = np.outer(B3SPLINE_1D, B3SPLINE_1D)
IDENTITY = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=float)

# 1-D kernels, for signals.
DIFFERENCE = np.array([-1, 1], dtype=float)
CENTRAL_DIFFERENCE = np.array([-0.5, 0, 0.5])
SECOND_DIFFERENCE = np.array([1, -2, 1], dtype=float)
BOX_1D = np.full(3, 1 / 3.0)
GAUSSIAN_1D = np.array([1, 2, 1]) / 4.0
IDENTITY_1D = np.array([0, 1, 0], dtype=float)


@dataclass(frozen=True)
class Kernel:
    """Weights to correlate with; ``parts`` holds two arrays for a gradient pair."""

    name: str
    parts: tuple
    description: str = ""

    @property
    def is_gradient_pair(self):
        return len(self.parts) == 2

    @property
    def ndim(self):
        return self.parts[0].ndim

    @property
    def shape(self):
        return self.parts[0].shape

    @property
    def is_signed(self):
        """Whether responses can be negative (edge kernels), so need a signed mapping."""
        return not self.is_gradient_pair and bool(np.any(self.parts[0] < 0))


def _single(name, weights, description):
    return Kernel(name, (np.asarray(weights, dtype=float),), description)


def _pair(name, x_weights, description):
    x_weights = np.asarray(x_weights, dtype=float)
    return Kernel(name, (x_weights, x_weights.T.copy()), description)


NAMED_KERNELS = {
    k.name: k
    for k in (
        _single("laplacian", LAPLACIAN, "8-neighbour Laplacian (the seed's edge kernel)"),
        _single("laplacian4", LAPLACIAN4, "4-neighbour Laplacian"),
        _single("sobel-x", SOBEL_X, "Sobel derivative along x (columns)"),
        _single("sobel-y", SOBEL_X.T, "Sobel derivative along y (rows)"),
        _pair("sobel", SOBEL_X, "Sobel gradient magnitude, hypot(sobel-x, sobel-y)"),
        _single("scharr-x", SCHARR_X, "Scharr derivative along x"),
        _single("scharr-y", SCHARR_X.T, "Scharr derivative along y"),
        _pair("scharr", SCHARR_X, "Scharr gradient magnitude"),
        _single("prewitt-x", PREWITT_X, "Prewitt derivative along x"),
        _single("prewitt-y", PREWITT_X.T, "Prewitt derivative along y"),
        _pair("prewitt", PREWITT_X, "Prewitt gradient magnitude"),
        _single("gaussian", GAUSSIAN, "3x3 binomial Gaussian, [1 2 1]/4 on each axis"),
        _single("box", BOX, "3x3 mean"),
        _single("b3spline", B3SPLINE, "5x5 B3-spline, [1 4 6 4 1]/16 on each axis (a trous)"),
        _single("identity", IDENTITY, "passes the input through"),
    )
}

NAMED_KERNELS_1D = {
    k.name: k
    for k in (
        _single("difference", DIFFERENCE, "forward difference x[i+d] - x[i]"),
        _single("central-difference", CENTRAL_DIFFERENCE, "(x[i+d] - x[i-d]) / 2"),
        _single("second-difference", SECOND_DIFFERENCE, "x[i-d] - 2x[i] + x[i+d]"),
        _single("box", BOX_1D, "3-tap mean"),
        _single("gaussian", GAUSSIAN_1D, "[1 2 1]/4 binomial"),
        _single("b3spline", B3SPLINE_1D, "[1 4 6 4 1]/16 B3-spline (a trous)"),
        _single("identity", IDENTITY_1D, "passes the signal through"),
    )
}


def named_kernel(name, ndim=2):
    """The named kernel ``name`` (2-D by default, 1-D for signals)."""
    table = NAMED_KERNELS if ndim == 2 else NAMED_KERNELS_1D
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; named kernels: {', '.join(table)}") from None


def parse_kernel_text(text, ndim=None):
    """Weights from text: rows split by ';' or newlines, values by ',' or whitespace.

    ``"1,2,1;0,0,0;-1,-2,-1"`` is 3x3; ``"0.5,-1,0.25"`` is 1-D. With ``ndim=2`` a
    single row becomes a 1xN kernel; with ``ndim=1`` a single column is flattened.
    Lines starting with '#' are comments.
    """
    rows = []
    for line in text.replace(";", "\n").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cells = [c for c in line.replace(",", " ").split() if c]
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            raise ValueError(f"kernel text has a value that is not a number: {line!r}") from None
    if not rows:
        raise ValueError("kernel text holds no numbers")
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"kernel rows have different lengths: {[len(r) for r in rows]}")
    weights = np.array(rows)
    if len(rows) == 1 and ndim != 2:
        weights = weights[0]
    return kernel_from_array(weights, ndim=ndim)


def kernel_from_array(weights, name="custom", ndim=None):
    """A :class:`Kernel` from an array, checked for shape and finite values."""
    weights = np.asarray(weights, dtype=float)
    if ndim == 1 and weights.ndim == 2 and 1 in weights.shape:
        weights = weights.ravel()
    if ndim == 2 and weights.ndim == 1:
        weights = weights[np.newaxis, :]
    if weights.ndim not in (1, 2) or weights.size == 0:
        raise ValueError(f"a kernel must be a non-empty 1-D or 2-D array, got shape {weights.shape}")
    if ndim is not None and weights.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D kernel, got shape {weights.shape}")
    if not np.all(np.isfinite(weights)):
        raise ValueError("kernel weights must be finite numbers")
    return Kernel(name, (weights,), f"custom {'x'.join(map(str, weights.shape))} kernel")


def resolve_kernel(spec, ndim=2):
    """A named kernel, or weights in text; files are read by the caller (imageio)."""
    table = NAMED_KERNELS if ndim == 2 else NAMED_KERNELS_1D
    if spec in table:
        return table[spec]
    if any(ch.isdigit() for ch in spec):
        return parse_kernel_text(spec, ndim=ndim)
    return named_kernel(spec, ndim)
