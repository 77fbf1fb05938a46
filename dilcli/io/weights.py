"""Trained layers from ``.npz`` files: a stack (``dilcli context --weights``) or a
network's kernels (``rf-table``/``rf-map --effective --weights``)."""

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
        MAX_WEIGHTS_LAYERS,
        stack_from_arrays,
    )

    relu = relu_keyword(relu, truncate)

    try:
        named = _weight_arrays(path, max_members=2 * MAX_WEIGHTS_LAYERS + 1)
        return stack_from_arrays(named, relu=relu)
    except (OSError, ValueError, MemoryError) as error:
        raise file_error(path, error) from None


def _weight_arrays(path, *, max_members):
    """The arrays of a weights ``.npz``, within the limits of trained weights."""
    from dilcli.core.stacks import MAX_WEIGHTS_BYTES, check_weights_header
    from dilcli.io.arrays import read_npz

    return read_npz(
        path,
        max_total_bytes=MAX_WEIGHTS_BYTES,
        max_members=max_members,
        check=check_weights_header,
    )


def file_error(path, error):
    """One-line ValueError naming ``path`` for an OSError, ValueError or MemoryError."""
    reason = "not enough memory" if isinstance(error, MemoryError) else str(error)
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    return ValueError(f"{path}: {' '.join(reason.split())}")


def read_network_weights(path):
    """The weight arrays of ``rf-map --effective --weights FILE.npz``: ``weight_0`` ...
    ``weight_{n-1}`` in order, 2-D ``(kh, kw)`` or 4-D ``(C_out, C_in, kh, kw)``, one per
    conv / convT layer of the network (other members, such as ``bias_i``, are ignored).

    Read by :func:`dilcli.io.arrays.read_npz` within the limits of trained weights
    (:data:`dilcli.core.stacks.MAX_WEIGHTS_BYTES`, headers checked before decompressing,
    never unpickled); ValueError naming the file otherwise.
    """
    import re

    from dilcli.core.network import MAX_NODES

    try:
        named = _weight_arrays(path, max_members=2 * MAX_NODES + 1)
        numbered = {}
        for name, array in named.items():
            match = re.fullmatch(r"weight_(\d+)", name)
            if match:
                if array.ndim not in (2, 4):
                    raise ValueError(f"'{name}' has shape {array.shape}: give (kh, kw) or 4-D")
                numbered[int(match.group(1))] = array
        if not numbered or sorted(numbered) != list(range(len(numbered))):
            raise ValueError("give arrays weight_0, weight_1, ... (one per conv layer, in order)")
        return [numbered[i] for i in range(len(numbered))]
    except (OSError, ValueError, MemoryError) as error:
        raise file_error(path, error) from None
