"""Signals in and out: CSV/TSV/TXT tables, ``.npy`` arrays and WAV audio.

The only module that reads or writes signal files; every write is atomic.

Values
    Text and ``.npy`` values are read as they are (text as float64). WAV samples become
    floats at full scale 1: int16 / 32768, int32 / 2**31, uint8 (x - 128) / 128; float
    WAV stays as it is. A signal is ``(N,)`` or ``(N, C)``, one column per channel.

Text tables
    The delimiter follows the extension (``.csv`` comma, ``.tsv`` tab, ``.txt``
    whitespace) unless the first row holds only another of tab, comma or semicolon.
    The first row is a header when it has a cell that is not a number where the next row
    has one. One column may be a *time column*: its cells are never parsed and are
    written back exactly as read. Leading ``#`` comment lines are kept. Values are
    written with 15 significant digits (``.npy`` keeps every bit).

Limits and damaged files
    ``read_signal`` refuses more than ``max_samples`` values (samples x channels;
    ``DEFAULT_MAX_SAMPLES``, 250,000,000, as the image pixel limit; 0 for no limit),
    checked before the data are read: from an ``.npy`` header, a WAV header, or a count
    of a text table's lines. Text tables are parsed in blocks into one float64 array,
    so reading costs about the data's size (8 bytes a value) plus a few MB; lines longer
    than ``MAX_LINE_CHARS`` (1 MiB) are refused. NaN and infinite values are replaced
    by 0, and ``Signal.notes`` says how many (as for images).

WAV files
    8, 16, 24 and 32-bit integer and 32/64-bit float samples; 24-bit files are written
    back as 24-bit. A sample rate of 0 is refused (a damaged header: no time axis and
    no output rate follow from it). A data chunk that claims more bytes than the file
    holds is read as far as it goes, with a note; a header chunk running past the end
    of the file is refused.

WAV outputs (:func:`wav_divisor`)
    Written at the input's rate and sample type. A response can be larger than its
    input (a difference kernel doubles a full-scale square wave), so before writing it
    is divided by one number chosen by a rule:

    - ``bound`` (the default): the largest ``|y|`` an input within full scale can give,
      when above 1: the kernel's ``sum |w|``, multiplied over the layers of a stack
      (a ``tanh`` caps it at 1). No sample can clip, and the same factor applies to
      every file of a batch; smoothing kernels (``sum |w| = 1``) keep the level.
    - ``peak``: the output's own peak ``max |y|``, when above 1: loudest without
      clipping, but the factor differs from file to file.
    - ``none``: unchanged; integer samples beyond full scale are clipped.
"""

from __future__ import annotations

import csv
import io
import os
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dilcli.io.atomic import atomic_write
from dilcli.vocab import DEFAULT_MAX_SAMPLES, WAV_SCALES

SIGNAL_EXTENSIONS = frozenset({".csv", ".tsv", ".txt", ".npy", ".wav"})
# Header names (their leading letters, lower case) that make a column the time column
# when --time-column is 'auto': "time", "Time (s)", "t", "timestamp", ...
TIME_COLUMN_NAMES = frozenset({"time", "t", "seconds", "sec", "timestamp", "date", "datetime"})
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}  # None: runs of whitespace
# Longest line of a text table, in characters.
MAX_LINE_CHARS = 1 << 20
_BATCH_LINES = 16_384  # text rows parsed at a time
_BLOCK_CHARS = 1 << 20  # text read at a time
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on


class SignalError(ValueError):
    """A file that cannot be read or written as a signal; the message says why."""


@dataclass
class Signal:
    """Samples plus what is needed to write results in the same format."""

    data: np.ndarray  # (N,) or (N, C)
    fmt: str  # "text", "npy" or "wav"
    rate: int | None = None  # WAV
    sample_dtype: np.dtype | None = None  # WAV sample type
    delimiter: str | None = None  # text; None for whitespace
    header: tuple | None = None  # text: every column's name, the time column's included
    time: tuple | None = None  # text: the time column's cells, as read
    time_index: int | None = None  # text: the time column's position
    comments: tuple = ()  # text: leading '#' lines
    notes: tuple = ()  # warnings: NaN replaced, a truncated WAV read as far as it goes
    sample_bits: int | None = None  # WAV: bits a sample is stored in (8, 16, 24, 32, 64)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def length(self):
        return self.data.shape[0]

    @property
    def channel_names(self):
        channels = 1 if self.data.ndim == 1 else self.data.shape[1]
        if self.header is not None:
            names = [n for j, n in enumerate(self.header) if j != self.time_index]
            if len(names) == channels:
                return names
        if channels == 1:
            return ["signal"]
        return [f"channel {c + 1}" for c in range(channels)]

    @property
    def axis_label(self):
        if self.fmt == "wav":
            return "time (s)"
        if self.time is not None and self._time_numbers() is not None:
            return self.header[self.time_index] if self.header else "time"
        return "sample"

    def positions(self, start, length):
        """Axis values of samples ``start .. start+length-1`` (may lie outside 0..N-1)."""
        index = np.arange(start, start + length, dtype=np.float64)
        if self.fmt == "wav":
            return index / self.rate
        numbers = self._time_numbers()
        if numbers is None:
            return index
        first, step = numbers[0], _mean_step(numbers)
        inside = (index >= 0) & (index < len(numbers))
        values = first + index * step
        values[inside] = numbers[index[inside].astype(np.intp)]
        return values

    def time_cells(self, start, length):
        """Time-column cells for output samples aligned with input ``start ..``.

        Cells of input samples are copied untouched; samples before the first or after
        the last (``full`` mode) get times extrapolated from a uniform numeric column,
        else empty cells.
        """
        count = len(self.time)
        inside_start, inside_stop = min(max(start, 0), count), max(min(start + length, count), 0)
        inside = list(self.time[inside_start:inside_stop]) if inside_start < inside_stop else []
        if not (start < 0 or start + length > count):
            return inside
        numbers = self._time_numbers()
        uniform = numbers is not None and _is_uniform(numbers)
        decimals = _decimals(self.time) if uniform else None

        def outside(i):
            if not uniform:
                return ""
            value = numbers[0] + i * (numbers[1] - numbers[0])
            return f"{value:.{decimals}f}" if decimals is not None else f"{value:.12g}"

        before = [outside(i) for i in range(start, min(start + length, 0))]
        after = [outside(i) for i in range(max(start, count), start + length)]
        return before + inside + after

    def _time_numbers(self):
        if self.time is None:
            return None
        if "numbers" not in self._cache:
            try:
                numbers = np.fromiter(map(float, self.time), np.float64, count=len(self.time))
            except ValueError:
                numbers = None
            self._cache["numbers"] = numbers
        return self._cache["numbers"]


class TimeCells(Sequence):
    """A text table's time column as read: every cell, kept as one string and offsets.

    About a byte a character plus 8 a cell, where a tuple of strings costs some 60 bytes
    a cell; compares equal to a tuple or list of the same strings.
    """

    __slots__ = ("_text", "_ends")

    def __init__(self, text, ends):
        self._text = text
        self._ends = ends

    @classmethod
    def from_cells(cls, cells):
        cells = list(cells)
        ends = np.cumsum([len(cell) for cell in cells], dtype=np.int64)
        return cls("".join(cells), ends)

    def __len__(self):
        return len(self._ends)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return tuple(self[i] for i in range(start, stop, step))
            if start >= stop:
                return ()
            ends = self._ends[start:stop].tolist()
            first = int(self._ends[start - 1]) if start else 0
            starts = [first, *ends[:-1]]
            return tuple(self._text[a:b] for a, b in zip(starts, ends))
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("time cell index out of range")
        first = int(self._ends[index - 1]) if index else 0
        return self._text[first : int(self._ends[index])]

    def __iter__(self):
        for start in range(0, len(self), _BATCH_LINES):
            yield from self[start : start + _BATCH_LINES]

    def __eq__(self, other):
        if not isinstance(other, (TimeCells, tuple, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None

    def __repr__(self):
        shown = ", ".join(repr(cell) for cell in self[:3])
        return f"TimeCells({len(self)} cells: {shown}{', ...' if len(self) > 3 else ''})"


def _mean_step(numbers):
    return float((numbers[-1] - numbers[0]) / (len(numbers) - 1)) if len(numbers) > 1 else 1.0


def _decimals(cells):
    """Digits after the point in plain decimal cells (None if any has an exponent)."""
    if any("e" in cell.lower() for cell in cells):
        return None
    return max(len(cell.partition(".")[2]) for cell in cells)


def _finite(data, notes):
    """NaN and +-Inf in float ``data`` replaced by 0 (in place), counted in ``notes``."""
    if data.dtype.kind != "f":
        return data
    bad = ~np.isfinite(data)
    count = int(np.count_nonzero(bad))
    if count:
        if not data.flags.writeable:
            data = data.copy()
        data[bad] = 0
        notes.append(f"{count:,} NaN or infinite value(s) replaced by 0")
    return data


def _check_samples(values, max_samples, what):
    if max_samples and values > max_samples:
        raise SignalError(
            f"{what} = {values:,} values, over the limit of {max_samples:,} "
            "(raise it with --max-samples, 0 for no limit)"
        )


def _is_uniform(numbers):
    if len(numbers) < 2:
        return False
    steps = np.diff(numbers)
    return bool(steps[0] != 0 and np.allclose(steps, steps[0], rtol=1e-6, atol=0))


# --- reading ------------------------------------------------------------------------


def read_signal(path, *, time_column="auto", max_samples=DEFAULT_MAX_SAMPLES):
    """Read ``path`` (by its extension) into a :class:`Signal`.

    ``time_column`` (text only): a header name or a 1-based column number; ``"auto"``
    picks a column whose header names a time (see ``TIME_COLUMN_NAMES``); None or
    ``"none"`` filters every column. ``max_samples`` bounds samples x channels (0: no
    limit), checked before the data are read. NaN and Inf become 0, counted in
    ``notes``; see the module docstring for the other rules.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, max_samples)
    if suffix == ".wav":
        return _read_wav(path, max_samples)
    if suffix in _DELIMITERS:
        return _read_text(path, suffix, time_column, max_samples)
    raise SignalError(f"unknown signal format {suffix or '(no extension)'!r}")


def _read_npy(path, max_samples):
    from dilcli.io import arrays

    def check(shape, dtype):
        if len(shape) not in (1, 2) or dtype.kind not in "biuf" or dtype.fields or 0 in shape:
            raise SignalError(
                f"expected a non-empty real (N,) or (N, C) array, got {dtype} {shape}"
            )
        values = shape[0] * (shape[1] if len(shape) == 2 else 1)
        _check_samples(values, max_samples, f"the array is {'x'.join(map(str, shape))}")

    try:
        array = arrays.read_npy(path, check=check)
    except arrays.ArrayError as error:
        raise SignalError(str(error)) from None
    notes = []
    return Signal(_finite(array, notes), "npy", notes=tuple(notes))


def _read_wav(path, max_samples):
    from scipy.io import wavfile

    layout = _wav_layout(path)
    notes = []
    if layout["declared"] > layout["held"]:
        notes.append(
            f"truncated WAV: the data chunk claims {layout['declared']:,} bytes, the file "
            f"holds {layout['held']:,}; read as far as it goes"
        )
    frames = min(layout["declared"], layout["held"]) // layout["block_align"]
    if frames == 0:
        raise SignalError("empty WAV file: no samples")
    channels = layout["channels"]
    _check_samples(frames * channels, max_samples, f"{frames:,} samples x {channels} channels")
    try:
        with warnings.catch_warnings():
            # Unknown chunks (LIST, cue, ...) are skipped; that is not the user's problem.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, samples = wavfile.read(path)
    except OSError:
        raise
    except MemoryError:
        raise SignalError("not enough memory to read the WAV file") from None
    except ValueError as error:  # scipy reports what it cannot decode as ValueError
        raise SignalError(f"not a readable WAV file: {' '.join(str(error).split())}") from None
    except Exception:  # anything else is scipy tripping over a damaged header
        raise SignalError("not a readable WAV file: damaged header") from None
    if samples.shape[0] == 0:
        raise SignalError("empty WAV file: no samples")
    data = _finite(_from_wav_samples(samples), notes)
    return Signal(
        data,
        "wav",
        rate=int(rate),
        sample_dtype=samples.dtype,
        notes=tuple(notes),
        sample_bits=8 * layout["block_align"] // channels,
    )


def _wav_layout(path):
    """The format and data chunk of a WAV file, from its header alone.

    Walks the RIFF chunks (RIFF and RIFX; RF64 sizes from its ds64 chunk) and refuses,
    in one line, what scipy would stumble on: a chunk running past the end of the
    file, no fmt or data chunk, zero channels, a sample rate of 0.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:] != b"WAVE":
            raise SignalError("not a readable WAV file: no RIFF/WAVE header")
        order = ">" if head[:4] == b"RIFX" else "<"
        position, fmt, ds64_data = 12, None, None
        while position + 8 <= size:
            handle.seek(position)
            kind, length = struct.unpack(order + "4sI", handle.read(8))
            name = kind.decode("latin-1")
            if kind == b"ds64" and length >= 16:
                ds64_data = struct.unpack("<QQ", handle.read(16))[1]
            if kind == b"data":
                if head[:4] == b"RF64" and length == 0xFFFFFFFF and ds64_data is not None:
                    length = ds64_data
                declared, held = length, size - position - 8
                break
            if position + 8 + length > size:
                raise SignalError(
                    f"damaged WAV file: its {name!r} chunk at byte {position:,} claims "
                    f"{length:,} bytes, past the end of the file ({size:,} bytes)"
                )
            if kind == b"fmt ":
                if length < 16:
                    raise SignalError(f"damaged WAV file: its fmt chunk has {length} bytes, not 16")
                fmt = struct.unpack(order + "HHIIHH", handle.read(16))
            position += 8 + length + (length & 1)
        else:
            raise SignalError("not a readable WAV file: no data chunk")
    if fmt is None:
        raise SignalError("not a readable WAV file: no fmt chunk before the data")
    _, channels, rate, _, block_align, _ = fmt
    if channels == 0 or block_align == 0 or block_align % channels:
        raise SignalError(f"damaged WAV file: {channels} channels in blocks of {block_align} bytes")
    if rate == 0:
        raise SignalError("damaged WAV file: its sample rate is 0")
    return {
        "channels": channels,
        "rate": rate,
        "block_align": block_align,
        "declared": declared,
        "held": max(held, 0),
    }


def _full_scale(dtype):
    """(offset, full scale) of an integer WAV sample type."""
    if dtype == np.uint8:
        return 128, 128.0
    return 0, float(np.iinfo(dtype).max) + 1.0


def _from_wav_samples(samples):
    if samples.dtype.kind == "f":
        return samples
    offset, scale = _full_scale(samples.dtype)
    # 16 bits fit a float32 exactly; wider samples keep their precision in float64.
    dtype = np.float32 if samples.dtype.itemsize <= 2 else np.float64
    return ((samples.astype(dtype) - offset) / dtype(scale)).astype(dtype)


def _read_text(path, suffix, time_column, max_samples):
    try:
        with open(path, encoding="utf-8-sig", newline=None) as handle:
            return _parse_table(handle, path, suffix, time_column, max_samples)
    except UnicodeDecodeError:
        raise SignalError("not a text table (not UTF-8 text)") from None
    except csv.Error as error:
        raise SignalError(f"not a readable table: {error}") from None


def _parse_table(handle, path, suffix, time_column, max_samples):
    """A text table, parsed in batches of rows into one preallocated float64 array."""
    comments = []
    batches = _data_batches(handle, comments)
    numbers, lines = next(batches, ((), ()))
    if not lines:
        raise SignalError("empty file: no rows of values")
    delimiter = _choose_delimiter(suffix, lines[0])
    rows = _split_rows(lines, delimiter, numbers)
    header = None
    if _is_header(rows[0], rows[1] if len(rows) > 1 else None):
        header, rows, numbers = tuple(rows[0]), rows[1:], numbers[1:]
        if not rows:
            raise SignalError("only a header row, no values")
    width = len(header) if header is not None else len(rows[0])
    _check_width(rows, numbers, width)
    time_index = _time_column_index(time_column, header, width)
    value_columns = [j for j in range(width) if j != time_index]
    if not value_columns:
        raise SignalError("the table has only the time column, no values to filter")

    capacity = _row_bound(path) - (header is not None)
    if max_samples and capacity * len(value_columns) > max_samples:
        # The line count is an upper bound (blank and comment lines count too): count
        # the rows themselves before refusing.
        capacity = _count_rows(path) - (header is not None)
        rows_text = f"{capacity:,} rows x {len(value_columns)} columns"
        _check_samples(capacity * len(value_columns), max_samples, rows_text)
    data = np.empty((max(capacity, len(rows)), len(value_columns)), np.float64)
    times = [] if time_index is not None else None
    count = 0

    def take(numbers, rows):
        nonlocal data, count
        block, cells = _parse_batch(rows, numbers, width, value_columns, time_index)
        if count + len(block) > data.shape[0]:  # more rows than lines were counted
            _check_samples((count + len(block)) * len(value_columns), max_samples, "the table")
            grown = np.empty((2 * (count + len(block)), data.shape[1]), np.float64)
            grown[:count] = data[:count]
            data = grown
        data[count : count + len(block)] = block
        count += len(block)
        if times is not None:  # kept compact at once: one string and the cells' lengths
            times.append(("".join(cells), np.fromiter(map(len, cells), np.int64, len(cells))))

    take(numbers, rows)
    for numbers, lines in batches:
        take(numbers, _split_rows(lines, delimiter, numbers))
    notes = []
    data = _finite(data[:count], notes)
    return Signal(
        data,
        "text",
        delimiter=delimiter,
        header=header,
        time=_joined_cells(times) if times is not None else None,
        time_index=time_index,
        comments=tuple(comments),
        notes=tuple(notes),
    )


def _logical_lines(handle):
    """``(line number, line)`` as ``str.splitlines`` numbers them, read in blocks."""
    number, carry = 0, ""
    while True:
        block = handle.read(_BLOCK_CHARS)
        if not block:
            break
        parts = (carry + block).splitlines(keepends=True)
        carry = parts.pop() if parts[-1][-1] not in _LINE_BREAKS else ""
        if len(carry) > MAX_LINE_CHARS or (parts and len(parts[0]) > MAX_LINE_CHARS + 1):
            raise SignalError(f"line {number + 1:,} is longer than {MAX_LINE_CHARS:,} characters")
        for part in parts:
            number += 1
            yield number, part[:-1]
    if carry:
        yield number + 1, carry


def _data_batches(handle, comments):
    """Rows of values as ``(line numbers, lines)``, a batch at a time (at most
    ``_BATCH_LINES`` lines or about ``_BLOCK_CHARS`` characters); ``#`` lines before
    the first row go to ``comments``, blank lines and later comments are skipped."""
    numbers, lines, size, seen = [], [], 0, False
    for number, line in _logical_lines(handle):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not seen:
                comments.append(line)
            continue
        seen = True
        numbers.append(number)
        lines.append(line)
        size += len(line)
        if len(lines) >= _BATCH_LINES or size >= _BLOCK_CHARS:
            yield numbers, lines
            numbers, lines, size = [], [], 0
    if lines:
        yield numbers, lines


def _row_bound(path):
    """Lines in the file (an upper bound on its rows), counted in binary blocks."""
    newlines = returns = 0
    last = b""
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            newlines += block.count(b"\n")
            returns += block.count(b"\r")
            last = block[-1:]
    breaks = newlines if newlines else returns
    return breaks + (last not in (b"\n", b"\r", b""))


def _count_rows(path):
    """Rows of values (not blank, not comments), counted without keeping any."""
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        return sum(
            1
            for _, line in _logical_lines(handle)
            if line.strip() and not line.strip().startswith("#")
        )


def _parse_batch(rows, numbers, width, value_columns, time_index):
    """One batch of rows: (float64 values, time cells)."""
    _check_width(rows, numbers, width)
    if time_index is None:
        return _parse_values(rows, numbers, value_columns), None
    values = [[cells[j] for j in value_columns] for cells in rows]
    return _parse_values(values, numbers, value_columns), [cells[time_index] for cells in rows]


def _check_width(rows, numbers, width):
    for number, cells in zip(numbers, rows, strict=True):
        if len(cells) != width:
            raise SignalError(
                f"ragged table: line {number} has {len(cells)} values, expected {width}"
            )


def _joined_cells(batches):
    """One :class:`TimeCells` from ``(text, cell lengths)`` per batch."""
    text = "".join(part for part, _ in batches)
    lengths = np.concatenate([sizes for _, sizes in batches]) if batches else np.zeros(0, np.int64)
    return TimeCells(text, np.cumsum(lengths, dtype=np.int64))


def _choose_delimiter(suffix, first_line):
    default = _DELIMITERS[suffix]
    if default is not None and default in first_line:
        return default
    for candidate in ("\t", ",", ";"):
        if candidate in first_line:
            return candidate
    return default


def _split_rows(lines, delimiter, numbers=None):
    if delimiter is None:
        return [line.split() for line in lines]
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]
    if len(rows) != len(lines):  # a quoted cell left open runs into the next line
        for number, line in zip(numbers or range(1, len(lines) + 1), lines):
            if len(list(csv.reader([line], delimiter=delimiter))) != 1 or line.count('"') % 2:
                raise SignalError(f"line {number}: a quoted cell is not closed")
        raise SignalError("a quoted cell is not closed")
    return rows


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_header(first, second):
    """A first row with a non-number where the next row has a number (or no next row)."""
    for j, cell in enumerate(first):
        below = second is None or j >= len(second) or _is_number(second[j])
        if below and not _is_number(cell):
            return True
    return False


def _time_column_index(spec, header, width):
    if spec is None or str(spec).lower() == "none":
        return None
    if str(spec).lower() == "auto":
        for j, name in enumerate(header or ()):
            word = re.match(r"[a-z]*", name.strip().lower()).group()
            if word in TIME_COLUMN_NAMES:
                return j
        return None
    spec = str(spec).strip()
    names = [n.strip() for n in header] if header is not None else []
    for matches in (lambda n: n == spec, lambda n: n.lower() == spec.lower()):
        for j, name in enumerate(names):
            if matches(name):
                return j
    if spec.isdigit() and 1 <= int(spec) <= width:
        return int(spec) - 1
    if header is None:
        raise SignalError(f"no time column {spec!r}: the table has no header and {width} column(s)")
    raise SignalError(f"no time column {spec!r}; columns: {', '.join(names)}")


def _parse_values(cells, numbers, columns):
    try:
        return np.array(cells, dtype=np.float64).reshape(len(cells), len(columns))
    except ValueError:
        pass
    for number, row in zip(numbers, cells, strict=True):
        for j, cell in zip(columns, row, strict=True):
            if not _is_number(cell):
                shown = repr(cell) if cell else "an empty cell"
                raise SignalError(f"line {number}, column {j + 1}: {shown} is not a number")
    raise SignalError("a value is not a number")  # numpy and float() disagree; unlikely


# --- writing ------------------------------------------------------------------------


def wav_divisor(response, rule, worst_case_gain):
    """What a WAV output is divided by before writing (module docstring has the rules)."""
    if rule == "bound":
        return max(1.0, float(worst_case_gain))
    if rule == "peak":
        finite = np.abs(response[np.isfinite(response)])
        return max(1.0, float(finite.max())) if finite.size else 1.0
    if rule == "none":
        return 1.0
    raise ValueError(f"WAV scaling must be one of {', '.join(WAV_SCALES)}; got {rule!r}")


def write_signal(path, source, data, *, start=0, divisor=1.0):
    """Write ``data`` (filtered from ``source``) to ``path`` in the format of its extension.

    ``start`` is the input position of the first output sample (the time column follows
    it); ``divisor`` applies to WAV outputs only (see :func:`wav_divisor`).
    """
    path = Path(path)
    data = np.asarray(data)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with atomic_write(path) as handle:
            np.save(handle, np.ascontiguousarray(data), allow_pickle=False)
    elif suffix == ".wav":
        _write_wav(path, source, data, divisor)
    elif suffix in _DELIMITERS:
        _write_text(path, source, data, start)
    else:
        raise SignalError(f"unknown signal format {suffix or '(no extension)'!r}")


def _write_wav(path, source, data, divisor):
    from scipy.io import wavfile

    rate = source.rate or 44100
    dtype = source.sample_dtype if source.sample_dtype is not None else np.dtype(np.float32)
    values = np.asarray(data, dtype=np.float64) / divisor
    values = np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf)
    if source.sample_bits == 24:  # read as int32 (scipy), written back in 3 bytes
        samples = np.clip(np.rint(values * 2.0**23), -(2**23), 2**23 - 1).astype("<i4")
        with atomic_write(path) as handle:
            handle.write(_wav24_bytes(rate, samples))
        return
    if dtype.kind == "f":
        samples = values.astype(dtype)
    else:
        offset, scale = _full_scale(dtype)
        info = np.iinfo(dtype)
        samples = np.clip(np.rint(values * scale) + offset, info.min, info.max).astype(dtype)
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, samples)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def _wav24_bytes(rate, samples):
    """A 24-bit PCM WAV file of int32 ``samples`` in [-2**23, 2**23) (scipy writes no
    24-bit files): each sample's low three bytes, little-endian."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    raw = samples.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    block = 3 * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 24)
    pad = b"\0" * (len(raw) & 1)
    chunks = b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(raw))
    body = b"WAVE" + chunks + raw + pad
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _write_text(path, source, data, start):
    """Rows written in batches: memory stays at a batch of text, whatever the length."""
    values = data.reshape(len(data), -1)
    buffer = io.StringIO()
    if source.delimiter is None:

        def write_row(cells):
            buffer.write(" ".join(cells) + "\n")

    else:
        writer = csv.writer(buffer, delimiter=source.delimiter, lineterminator="\n")
        write_row = writer.writerow
    for line in source.comments:
        buffer.write(line + "\n")
    if source.header is not None:
        write_row(source.header)
    with atomic_write(path) as handle:
        for first in range(0, len(values), _BATCH_LINES):
            rows = values[first : first + _BATCH_LINES].tolist()
            time = None
            if source.time is not None:
                time = source.time_cells(start + first, len(rows))
            for i, row in enumerate(rows):
                cells = [_number_text(v) for v in row]
                if time is not None:
                    cells.insert(source.time_index, time[i])
                write_row(cells)
            handle.write(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
        handle.write(buffer.getvalue().encode("utf-8"))


def _number_text(value):
    # 15 significant digits, as spreadsheets show: 0.0287, not 0.028700000000000003
    # (float rounding in the sum). Every decimal of up to 15 digits is kept exactly.
    return format(value, ".15g")
