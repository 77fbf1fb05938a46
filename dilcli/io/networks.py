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
