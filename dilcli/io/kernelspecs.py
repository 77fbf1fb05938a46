"""Kernels as users give them to ``-k``: a name, weights as text, or a file.

Files are ``.npy`` arrays (read by the hardened reader, :mod:`dilcli.io.arrays`) or
``.csv``/``.txt`` text; limits (:mod:`dilcli.core.kernels`) are checked before the
weights are allocated.
"""

from __future__ import annotations

import os
from pathlib import Path

from dilcli.io.arrays import read_npy

KERNEL_FILE_SUFFIXES = (".npy", ".csv", ".txt")


def resolve_kernel_spec(spec, ndim=2):
    """The kernel ``spec`` names: a file if one exists there, else a name or weights.

    Raises ValueError with a one-line reason.
    """
    from dilcli.core.kernels import resolve_kernel

    if os.path.isfile(spec):
        return load_kernel_file(spec, ndim=ndim)
    if os.sep in spec or os.path.splitext(spec)[1].lower() in KERNEL_FILE_SUFFIXES:
        raise ValueError(f"no such kernel file: {spec}")
    kernel = resolve_kernel(spec, ndim=ndim)
    if kernel.name == "custom":  # weights as text: named by them, so outputs never mix
        kernel = type(kernel)(weights_name(kernel.parts), kernel.parts, kernel.description)
    return kernel


def weights_name(parts):
    """``custom-`` and 6 hex digits of the SHA-256 of the weights (as float64, with
    their shape): the same weights, however written, give the same name.

    >>> weights_name([__import__("numpy").array([1.0, -2.0, 1.0])])
    'custom-6c8204'
    """
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for part in parts:
        weights = np.ascontiguousarray(part, dtype="<f8")
        digest.update(repr(weights.shape).encode() + weights.tobytes())
    return f"custom-{digest.hexdigest()[:6]}"


def load_kernel_file(path, ndim=2):
    """A custom kernel from a ``.npy`` array or a ``.csv``/``.txt`` text file.

    The kernel is named after the file's stem, so outputs say which kernel made them.
    Limits (:mod:`dilcli.kernels`): at most ``MAX_KERNEL_TAPS`` taps, checked from an
    ``.npy`` header before anything is allocated; text files of at most
    ``MAX_KERNEL_TEXT_BYTES``, checked before they are read.
    """
    from dilcli.core.kernels import (
        MAX_KERNEL_TEXT_BYTES,
        check_kernel_taps,
        kernel_from_array,
        parse_kernel_text,
    )

    def check(shape, dtype):
        if not dtype.hasobject and (dtype.kind not in "biuf" or dtype.fields):
            raise ValueError(f"holds {dtype} values, not real numbers")
        check_kernel_taps(shape)

    path = Path(path)
    # By the name's end, not Path.suffix: a file called '.npy' has no suffix to pathlib.
    suffix = next((s for s in KERNEL_FILE_SUFFIXES if path.name.lower().endswith(s)), "")
    stem = path.name[: len(path.name) - len(suffix)]
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)
    try:
        if suffix == ".npy":
            with open(path, "rb") as handle:
                if handle.read(6) != b"\x93NUMPY":
                    raise ValueError(f"kernel file {path} is not a .npy array")
            kernel = kernel_from_array(read_npy(path, check=check), ndim=ndim)
        else:
            size = os.stat(path).st_size
            if size > MAX_KERNEL_TEXT_BYTES:
                raise ValueError(
                    f"{size:,} bytes, over the limit of {MAX_KERNEL_TEXT_BYTES:,} bytes for a "
                    "text kernel (save a larger kernel as .npy)"
                )
            kernel = parse_kernel_text(path.read_text(encoding="utf-8"), ndim=ndim)
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise ValueError(f"cannot read kernel file {path}: {_reason(error)}") from None
    except MemoryError:
        raise ValueError(f"kernel file {path}: not enough memory to read it") from None
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"kernel file {path}: {_reason(error)}") from None
    return type(kernel)(name or weights_name(kernel.parts), kernel.parts, kernel.description)


def _reason(error):
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
