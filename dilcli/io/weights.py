"""Trained layers from a ``.npz`` file (``dilcli context --weights``)."""

from __future__ import annotations


def read_weights(path, *, relu=True, truncate=None):
    """The stack of layers a weights ``.npz`` holds; ValueError naming the file if bad.

    With ``relu`` (``truncate`` is its deprecated name), a ReLU follows every layer but
    the last.

    Read by :func:`dilcli.io.arrays.read_npz` within the limits of
    :mod:`dilcli.core.stacks` (``MAX_WEIGHTS_BYTES`` decompressed, ``MAX_WEIGHTS_LAYERS``,
    ``MAX_WEIGHTS_KERNEL_SIDE``), checked from the zip directory and each array's header
    before anything is decompressed. The layout is in :func:`stack_from_arrays`.
    """
    from dilcli.core.layers import relu_keyword
    from dilcli.core.stacks import (
        MAX_WEIGHTS_BYTES,
        MAX_WEIGHTS_LAYERS,
        check_weights_header,
        stack_from_arrays,
    )
    from dilcli.io.arrays import read_npz

    relu = relu_keyword(relu, truncate)

    try:
        named = read_npz(
            path,
            max_total_bytes=MAX_WEIGHTS_BYTES,
            max_members=2 * MAX_WEIGHTS_LAYERS + 1,
            check=check_weights_header,
        )
        return stack_from_arrays(named, relu=relu)
    except (OSError, ValueError, MemoryError) as error:
        reason = "not enough memory" if isinstance(error, MemoryError) else str(error)
        if isinstance(error, OSError) and error.strerror:
            reason = error.strerror
        raise ValueError(f"{path}: {' '.join(reason.split())}") from None
