"""Named kernels and custom kernels parsed from text; no I/O.

A :class:`Kernel` is one weight array, or an x/y pair whose responses combine into a
gradient magnitude (``sobel``, ``scharr``, ``prewitt``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Limits on custom kernels (files, and weights given as text), checked before anything
# the size of the kernel is allocated: at most MAX_KERNEL_TAPS weights per kernel
# (1-D or 2-D: 65,536 taps, e.g. 256x256; dilated kernels have a handful), and text of
# at most MAX_KERNEL_TEXT_BYTES (that many taps at up to 64 characters each).
MAX_KERNEL_TAPS = 1 << 16
MAX_KERNEL_TEXT_BYTES = 1 << 22
_TOKEN = re.compile(r"#[^\n]*|[^\s,;#]+")

# Weights as plain Python, so listing kernels never has to import numpy (start-up);
# numpy arrays of them (LAPLACIAN, NAMED_KERNELS, ...) are built on first use.


def _outer(column, row, scale):
    return tuple(tuple(a * b * scale for b in row) for a in column)


_WEIGHTS = {
    "LAPLACIAN": ((-1, -1, -1), (-1, 8, -1), (-1, -1, -1)),
    "LAPLACIAN4": ((0, -1, 0), (-1, 4, -1), (0, -1, 0)),
    "SOBEL_X": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "SCHARR_X": ((-3, 0, 3), (-10, 0, 10), (-3, 0, 3)),
    "PREWITT_X": ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1)),
    "GAUSSIAN": _outer((1, 2, 1), (1, 2, 1), 1 / 16),
    "BOX": _outer((1, 1, 1), (1, 1, 1), 1 / 9),
    "B3SPLINE": _outer((1, 4, 6, 4, 1), (1, 4, 6, 4, 1), 1 / 256),  # the starlet's filter
    "IDENTITY": ((0, 0, 0), (0, 1, 0), (0, 0, 0)),
    # 1-D kernels, for signals.
    "B3SPLINE_1D": (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16),
    "DIFFERENCE": (-1, 1),
    "CENTRAL_DIFFERENCE": (-0.5, 0, 0.5),
    "SECOND_DIFFERENCE": (1, -2, 1),
    "BOX_1D": (1 / 3, 1 / 3, 1 / 3),
    "GAUSSIAN_1D": (0.25, 0.5, 0.25),
    "IDENTITY_1D": (0, 1, 0),
}

# name, weights (the x-weights of a gradient pair), is a gradient pair, description. The
# descriptions say what the kernel computes at dilation d, as correlation in 'same' mode
# (docs/design.md, section 2); tests/test_kernel_descriptions.py pushes impulses and
# ramps through the engine and checks every claim: the 1-D formulas are evaluated as
# written, the 2-D ones by their taps, ramps and constants.
_NAMED_2D = (
    ("laplacian", "LAPLACIAN", False,
     "8*x[i,j] minus its 8 neighbours d apart: 0 on flat areas and ramps (the seed's edge kernel)"),
    ("laplacian4", "LAPLACIAN4", False,
     "4*x[i,j] minus its 4 neighbours d apart (up, down, left, right): 0 on flat areas and ramps"),
    ("sobel-x", "SOBEL_X", False,
     "Sobel d/dx (columns): right minus left, rows weighted 1 2 1; 8*d on x[i,j] = j"),
    ("sobel-y", "SOBEL_X", "T",
     "Sobel d/dy (rows): below minus above, columns weighted 1 2 1; 8*d on x[i,j] = i"),
    ("sobel", "SOBEL_X", True, "Sobel gradient magnitude, hypot(sobel-x, sobel-y)"),
    ("scharr-x", "SCHARR_X", False,
     "Scharr d/dx: right minus left, rows weighted 3 10 3; 32*d on x[i,j] = j"),
    ("scharr-y", "SCHARR_X", "T",
     "Scharr d/dy: below minus above, columns weighted 3 10 3; 32*d on x[i,j] = i"),
    ("scharr", "SCHARR_X", True, "Scharr gradient magnitude, hypot(scharr-x, scharr-y)"),
    ("prewitt-x", "PREWITT_X", False,
     "Prewitt d/dx: right minus left, rows weighted 1 1 1; 6*d on x[i,j] = j"),
    ("prewitt-y", "PREWITT_X", "T",
     "Prewitt d/dy: below minus above, columns weighted 1 1 1; 6*d on x[i,j] = i"),
    ("prewitt", "PREWITT_X", True, "Prewitt gradient magnitude, hypot(prewitt-x, prewitt-y)"),
    ("gaussian", "GAUSSIAN", False,
     "3x3 binomial blur, [1 2 1]/4 on each axis, taps d apart: keeps flat areas"),
    ("box", "BOX", False, "3x3 mean, [1 1 1]/3 on each axis, taps d apart: keeps flat areas"),
    ("b3spline", "B3SPLINE", False,
     "5x5 B3-spline, [1 4 6 4 1]/16 on each axis, taps d apart (a trous): keeps flat areas"),
    ("identity", "IDENTITY", False, "y[i,j] = x[i,j]: passes the input through"),
)  # fmt: skip
_NAMED_1D = (
    ("difference", "DIFFERENCE", False,
     "y[i] = x[i+d-d//2] - x[i-d//2], centred on i (odd d: i + 1/2; causal: x[i] - x[i-d])"),
    ("central-difference", "CENTRAL_DIFFERENCE", False, "y[i] = (x[i+d] - x[i-d]) / 2"),
    ("second-difference", "SECOND_DIFFERENCE", False, "y[i] = x[i-d] - 2*x[i] + x[i+d]"),
    ("box", "BOX_1D", False, "y[i] = (x[i-d] + x[i] + x[i+d]) / 3"),
    ("gaussian", "GAUSSIAN_1D", False, "y[i] = (x[i-d] + 2*x[i] + x[i+d]) / 4"),
    ("b3spline", "B3SPLINE_1D", False,
     "y[i] = (x[i-2*d] + 4*x[i-d] + 6*x[i] + 4*x[i+d] + x[i+2*d]) / 16 (a trous)"),
    ("identity", "IDENTITY_1D", False, "y[i] = x[i]: passes the signal through"),
)  # fmt: skip


def _transpose(rows):
    return tuple(zip(*rows))


def definitions(ndim=2):
    """``(name, description, parts)`` of every named kernel, weights as nested tuples."""
    result = []
    for name, weights, kind, description in _NAMED_2D if ndim == 2 else _NAMED_1D:
        rows = _WEIGHTS[weights]
        parts = (
            (rows, _transpose(rows))
            if kind is True
            else (_transpose(rows) if kind == "T" else rows,)
        )
        result.append((name, description, parts))
    return result


def __getattr__(name):
    # Module constants as numpy arrays, built once on first use (PEP 562). Other
    # names (the import system asks for __path__) must not import numpy.
    if name not in _WEIGHTS and name not in ("NAMED_KERNELS", "NAMED_KERNELS_1D"):
        raise AttributeError(f"module 'dilcli.core.kernels' has no attribute {name!r}")
    import numpy as np

    if name in _WEIGHTS:
        value = np.array(_WEIGHTS[name], dtype=float)
    elif name in ("NAMED_KERNELS", "NAMED_KERNELS_1D"):
        value = {
            n: Kernel(n, tuple(np.array(p, dtype=float) for p in parts), description)
            for n, description, parts in definitions(2 if name == "NAMED_KERNELS" else 1)
        }
    globals()[name] = value
    return value


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
        return not self.is_gradient_pair and bool((self.parts[0] < 0).any())

    def stack_weights(self):
        """The weights a layer of a stack applies; ValueError for a gradient pair, whose
        magnitude ``hypot(g_x, g_y)`` is no correlation a next layer could follow."""
        if self.is_gradient_pair:
            raise ValueError(
                f"{self.name} is a gradient pair (a magnitude); a stack needs one kernel, "
                f"e.g. {self.name}-x"
            )
        return self.parts[0]


def named_kernel(name, ndim=2):
    """The named kernel ``name`` (2-D by default, 1-D for signals)."""
    table = __getattr__("NAMED_KERNELS" if ndim == 2 else "NAMED_KERNELS_1D")
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
    _check_text_taps(text)
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
    import numpy as np

    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"kernel rows have different lengths: {[len(r) for r in rows]}")
    weights = np.array(rows)
    if len(rows) == 1 and ndim != 2:
        weights = weights[0]
    return kernel_from_array(weights, ndim=ndim)


def check_kernel_taps(shape):
    """Raise ValueError for a kernel shape with more than ``MAX_KERNEL_TAPS`` taps."""
    taps = 1
    for size in shape:
        taps *= int(size)
    if taps > MAX_KERNEL_TAPS:
        sizes = "x".join(str(int(size)) for size in shape)
        raise ValueError(
            f"the kernel has {taps:,} taps ({sizes}), over the limit of {MAX_KERNEL_TAPS:,}"
        )


def _check_text_taps(text):
    """Count the values in kernel text, stopping past the limit: nothing is split first."""
    count = 0
    for match in _TOKEN.finditer(text):
        if not match.group().startswith("#"):
            count += 1
            if count > MAX_KERNEL_TAPS:
                raise ValueError(
                    f"the kernel text holds more than {MAX_KERNEL_TAPS:,} values, over the limit "
                    f"of {MAX_KERNEL_TAPS:,} taps"
                )


def kernel_from_array(weights, name="custom", ndim=None):
    """A :class:`Kernel` from an array, checked for shape, size (``MAX_KERNEL_TAPS``)
    and finite values."""
    import numpy as np

    check_kernel_taps(np.shape(weights))
    weights = np.asarray(weights, dtype=float)
    if ndim == 1 and weights.ndim == 2 and 1 in weights.shape:
        weights = weights.ravel()
    if ndim == 2 and weights.ndim == 1:
        weights = weights[np.newaxis, :]
    if weights.ndim not in (1, 2) or weights.size == 0:
        raise ValueError(
            f"a kernel must be a non-empty 1-D or 2-D array, got shape {weights.shape}"
        )
    if ndim is not None and weights.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D kernel, got shape {weights.shape}")
    if not np.all(np.isfinite(weights)):
        raise ValueError("kernel weights must be finite numbers")
    return Kernel(name, (weights,), f"custom {'x'.join(map(str, weights.shape))} kernel")


def resolve_kernel(spec, ndim=2):
    """A named kernel, or weights in text; files are read by the caller (imageio)."""
    table = __getattr__("NAMED_KERNELS" if ndim == 2 else "NAMED_KERNELS_1D")
    if spec in table:
        return table[spec]
    if any(ch.isdigit() for ch in spec):
        return parse_kernel_text(spec, ndim=ndim)
    return named_kernel(spec, ndim)
