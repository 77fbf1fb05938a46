"""The one reader of numpy's ``.npy`` and ``.npz`` files: headers first, data after checks.

Images, kernels, signals and trained weights all read arrays here, and in the same
order of checks, so a hostile file costs the same little everywhere:

1. The header (``numpy.lib.format``: magic, version, a small literal dict) is parsed,
   nothing else read. A file not starting with numpy's magic, or a garbled header,
   is refused.
2. ``check(shape, dtype)`` (``check(name, shape, dtype)`` for ``.npz``), the caller's
   own rules: an image's pixel limit, a kernel's taps, a layer's kernel side. It raises
   the caller's own error.
3. Object dtypes are refused: nothing is ever unpickled. Zero-size dtypes and negative
   dimensions are refused as damaged headers.
4. The data's size, ``shape x itemsize`` in Python integers (no overflow), is checked
   against ``max_bytes`` before anything is allocated.
5. The file (or zip member) must hold the bytes the header promises: a short one is
   *truncated*, and says so with both numbers; ``on_truncated`` may accept it instead
   (the missing values are then 0).

Only then is the array allocated, once, and filled in place (no second copy).

``.npz`` archives (:func:`read_npz`): every member's *declared* uncompressed size is
checked against the limits before it is decompressed; decompression stops at the
declared size (Python's zipfile never inflates past it), so a member that would
deflate to gigabytes of zeros is refused at once, in little memory. The member's
header then goes through the checks above, and its data must match both the header
and the declared size; the zip CRC is verified. Members must be ``.npy`` arrays.

Every failure raises :class:`ArrayError` (a ``ValueError``) with a one-line reason;
callers add the file's name. Errors from ``check`` and ``on_truncated`` pass through.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

MAGIC = b"\x93NUMPY"
# Members of an .npz archive: more is refused before any is read (callers may lower it).
DEFAULT_MAX_MEMBERS = 1024
_BLOCK = 1 << 24  # bytes read at a time, straight into the array
_MAX_HEADER_CHARS = 10_000  # numpy's own default: headers are short literal dicts


class ArrayError(ValueError):
    """A file that cannot be read as a numpy array; the message says why, in one line."""


def describe(shape, dtype):
    """``float32 (6, 5)``: how messages name an array."""
    return f"{dtype} {tuple(shape)}"


def data_bytes(shape, dtype):
    """Bytes of an array's data, in Python integers (no overflow for any header)."""
    count = 1
    for size in shape:
        count *= int(size)
    return count * dtype.itemsize


def read_header(stream, where=".npy"):
    """``(shape, fortran_order, dtype)`` from numpy's header at the stream's position.

    Reads the header only, leaving the stream at the first byte of the data. Raises
    :class:`ArrayError` for a missing magic, an unknown version or a header numpy
    cannot parse.
    """
    fmt = np.lib.format
    head = stream.read(len(MAGIC) + 2)
    if head[: len(MAGIC)] != MAGIC:
        raise ArrayError(f"not a {where} array: it does not start with numpy's header")
    try:
        version = (head[-2], head[-1]) if len(head) == len(MAGIC) + 2 else None
        with warnings.catch_warnings():  # headers written by Python 2 parse with a warning
            warnings.simplefilter("ignore")
            if version == (1, 0):
                shape, fortran_order, dtype = fmt.read_array_header_1_0(
                    stream, max_header_size=_MAX_HEADER_CHARS
                )
            elif version in ((2, 0), (3, 0)):
                shape, fortran_order, dtype = fmt.read_array_header_2_0(
                    stream, max_header_size=_MAX_HEADER_CHARS
                )
            elif version is None:
                raise ValueError("it ends inside the format version")
            else:
                raise ValueError(f"unknown format version {version[0]}.{version[1]}")
    except Exception as error:  # numpy parses the header with ast: many error types
        raise ArrayError(f"damaged {where} header: {_reason(error)}") from None
    if any(size < 0 for size in shape):
        raise ArrayError(f"damaged {where} header: negative dimension in shape {shape}")
    return tuple(int(size) for size in shape), bool(fortran_order), dtype


def _refuse_unsafe(shape, dtype, max_bytes, where):
    """Object dtypes, zero-size values and data over ``max_bytes``; else the data's bytes."""
    if dtype.hasobject:
        raise ArrayError(
            f"{where} holds Python objects (dtype {dtype}), not numbers; they are never unpickled"
        )
    if dtype.itemsize == 0:
        raise ArrayError(f"damaged {where} header: values of zero size (dtype {dtype})")
    size = data_bytes(shape, dtype)
    if max_bytes is not None and size > max_bytes:
        raise ArrayError(
            f"{where} is {describe(shape, dtype)} = {size:,} bytes of data, over the limit "
            f"of {max_bytes:,} bytes"
        )
    return size


def read_npy(path, *, max_bytes=None, check=None, on_truncated=None):
    """The array in the ``.npy`` file ``path``, after the checks of the module docstring.

    ``check(shape, dtype)`` runs right after the header is parsed. ``on_truncated(
    message, promised, held)`` (bytes of data) is called for a file shorter than its
    header promises; if it returns, the missing values are 0. Without it a short file
    raises :class:`ArrayError` ("truncated .npy: the header promises N bytes of ...,
    the file holds M").
    """
    with open(path, "rb") as handle:
        shape, fortran_order, dtype = read_header(handle)
        if check is not None:
            check(shape, dtype)
        size = _refuse_unsafe(shape, dtype, max_bytes, "the array")
        held = max(0, os.fstat(handle.fileno()).st_size - handle.tell())
        if held < size:
            message = (
                f"truncated .npy: the header promises {size:,} bytes of "
                f"{describe(shape, dtype)}, the file holds {held:,}"
            )
            if on_truncated is None:
                raise ArrayError(message)
            on_truncated(message, size, held)
            flat = np.zeros(size // dtype.itemsize, dtype)
        else:
            flat = np.empty(size // dtype.itemsize, dtype)
        got = _fill(handle, flat, min(size, held))
        if got < min(size, held):  # the file shrank while being read
            raise ArrayError(f"truncated .npy: it ended after {got:,} bytes of data")
    return flat.reshape(shape, order="F" if fortran_order else "C")


def _fill(stream, flat, count):
    """Read up to ``count`` bytes from ``stream`` into the start of ``flat``; the bytes read."""
    if not count:
        return 0
    view = memoryview(flat).cast("B")
    done = 0
    while done < count:
        got = stream.readinto(view[done : done + min(_BLOCK, count - done)])
        if not got:
            break
        done += got
    return done


def read_npz(
    path,
    *,
    max_bytes=None,
    max_total_bytes=None,
    max_members=DEFAULT_MAX_MEMBERS,
    check=None,
):
    """``{name: array}`` of the ``.npz`` archive ``path`` (names without ``.npy``).

    ``max_bytes`` bounds each array's data, ``max_total_bytes`` the declared
    uncompressed size of all members together (both checked before decompressing),
    ``max_members`` the number of members. ``check(name, shape, dtype)`` runs on each
    member's header before its data is read. See the module docstring.
    """
    import zipfile

    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise ArrayError("not a .npz archive of named arrays (save it with numpy.savez)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive.infolist(), max_bytes, max_total_bytes, max_members)
            return {
                name: _read_member(archive, info, name, max_bytes, check)
                for name, info in members.items()
            }
    except _Passthrough as wrapped:
        raise wrapped.error from None
    except ArrayError:
        raise
    except MemoryError:
        raise
    except Exception as error:  # zipfile, zlib, bz2, lzma: many types for a bad archive
        raise ArrayError(f"damaged .npz archive: {_reason(error)}") from None


def _checked_members(members, max_bytes, max_total_bytes, max_members):
    """``{name: ZipInfo}`` after the count and the declared sizes are checked."""
    if max_members is not None and len(members) > max_members:
        raise ArrayError(
            f"the archive has {len(members):,} members, over the limit of {max_members:,}"
        )
    # A member is a header (numpy caps it) and the data.
    member_limit = None if max_bytes is None else max_bytes + _MAX_HEADER_CHARS + 16
    declared, named = 0, {}
    for info in members:
        name = info.filename
        if info.is_dir() or not name.endswith(".npy"):
            raise ArrayError(f"member {name!r} is not a .npy array")
        if name[:-4] in named:
            raise ArrayError(f"the archive holds two members named {name!r}")
        named[name[:-4]] = info
        if member_limit is not None and info.file_size > member_limit:
            raise ArrayError(
                f"member {name!r} declares {info.file_size:,} bytes uncompressed, over the "
                f"limit of {member_limit:,}"
            )
        declared += info.file_size
        if max_total_bytes is not None and declared > max_total_bytes:
            if info.file_size > max_total_bytes:
                raise ArrayError(
                    f"member {name!r} declares {info.file_size:,} bytes uncompressed, over "
                    f"the limit of {max_total_bytes:,} for all arrays together"
                )
            raise ArrayError(
                f"the members declare {declared:,} bytes uncompressed (or more), over the "
                f"limit of {max_total_bytes:,} for all arrays together"
            )
    return named


class _Passthrough(Exception):
    """Carries the caller's own error (from ``check``) past read_npz's handlers."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


def _read_member(archive, info, name, max_bytes, check):
    where = f"member {name!r}"
    with archive.open(info) as stream:
        shape, fortran_order, dtype = read_header(stream, where)
        if check is not None:
            try:
                check(name, shape, dtype)
            except Exception as error:
                raise _Passthrough(error) from None
        size = _refuse_unsafe(shape, dtype, max_bytes, where)
        held = max(0, info.file_size - stream.tell())
        truncated = (
            f"truncated {where}: the header promises {size:,} bytes of "
            f"{describe(shape, dtype)}, the member holds {{}}"
        )
        if held < size:
            raise ArrayError(truncated.format(f"{held:,}"))
        flat = np.empty(size // dtype.itemsize, dtype)
        got = _fill(stream, flat, size)
        if got < size:
            raise ArrayError(truncated.format(f"{got:,}"))
        while stream.read(_BLOCK):  # to the end: zipfile checks the CRC there
            pass
    return flat.reshape(shape, order="F" if fortran_order else "C")


def _reason(error):
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
