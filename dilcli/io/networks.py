"""Network descriptions from files (``rf-table --network FILE``)."""

from __future__ import annotations

from dilcli.core.network import MAX_FILE_BYTES, parse_network_text


def parse_network_file(path):
    """A :class:`~dilcli.core.network.Network` from a text file of at most
    :data:`~dilcli.core.network.MAX_FILE_BYTES` (JSON or the spec grammar)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path}: a network file may be at most {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    return parse_network_text(text, where=str(path))


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
    from dilcli.core.stacks import MAX_WEIGHTS_BYTES, check_weights_header
    from dilcli.io.arrays import read_npz

    try:
        named = read_npz(
            path,
            max_total_bytes=MAX_WEIGHTS_BYTES,
            max_members=2 * MAX_NODES + 1,
            check=check_weights_header,
        )
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
        from dilcli.io.weights import file_error

        raise file_error(path, error) from None
