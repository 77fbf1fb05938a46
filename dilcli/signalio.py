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
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dilcli.atomic import atomic_write

SIGNAL_EXTENSIONS = frozenset({".csv", ".tsv", ".txt", ".npy", ".wav"})
WAV_SCALES = ("bound", "peak", "none")
# Header names (their leading letters, lower case) that make a column the time column
# when --time-column is 'auto': "time", "Time (s)", "t", "timestamp", ...
TIME_COLUMN_NAMES = frozenset({"time", "t", "seconds", "sec", "timestamp", "date", "datetime"})
_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}  # None: runs of whitespace


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
        cells = []
        numbers = self._time_numbers()
        uniform = numbers is not None and _is_uniform(numbers)
        decimals = _decimals(self.time)
        for i in range(start, start + length):
            if 0 <= i < len(self.time):
                cells.append(self.time[i])
            elif uniform:
                value = numbers[0] + i * (numbers[1] - numbers[0])
                cells.append(f"{value:.{decimals}f}" if decimals is not None else f"{value:.12g}")
            else:
                cells.append("")
        return cells

    def _time_numbers(self):
        if self.time is None:
            return None
        try:
            return np.array([float(c) for c in self.time])
        except ValueError:
            return None


def _mean_step(numbers):
    return float((numbers[-1] - numbers[0]) / (len(numbers) - 1)) if len(numbers) > 1 else 1.0


def _decimals(cells):
    """Digits after the point in plain decimal cells (None if any has an exponent)."""
    if any("e" in cell.lower() for cell in cells):
        return None
    return max(len(cell.partition(".")[2]) for cell in cells)


def _is_uniform(numbers):
    if len(numbers) < 2:
        return False
    steps = np.diff(numbers)
    return bool(steps[0] != 0 and np.allclose(steps, steps[0], rtol=1e-6, atol=0))


# --- reading ------------------------------------------------------------------------


def read_signal(path, *, time_column="auto"):
    """Read ``path`` (by its extension) into a :class:`Signal`.

    ``time_column`` (text only): a header name or a 1-based column number; ``"auto"``
    picks a column whose header names a time (see ``TIME_COLUMN_NAMES``); None or
    ``"none"`` filters every column.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path)
    if suffix == ".wav":
        return _read_wav(path)
    if suffix in _DELIMITERS:
        return _read_text(path, suffix, time_column)
    raise SignalError(f"unknown signal format {suffix or '(no extension)'!r}")


def _read_npy(path):
    with open(path, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise SignalError("not a .npy array (no NumPy header)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:
        raise SignalError(f"not a readable .npy array: {error}") from None
    if array.ndim not in (1, 2) or array.dtype.kind not in "biuf" or 0 in array.shape:
        raise SignalError(
            f"expected a non-empty real (N,) or (N, C) array, got {array.dtype} {array.shape}"
        )
    return Signal(array, "npy")


def _read_wav(path):
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            # Unknown chunks (LIST, cue, ...) are skipped; that is not the user's problem.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, samples = wavfile.read(path)
    except OSError:
        raise
    except Exception as error:  # scipy reports malformed files in several ways
        raise SignalError(f"not a readable WAV file: {' '.join(str(error).split())}") from None
    if samples.shape[0] == 0:
        raise SignalError("empty WAV file: no samples")
    return Signal(_from_wav_samples(samples), "wav", rate=int(rate), sample_dtype=samples.dtype)


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


def _read_text(path, suffix, time_column):
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SignalError("not a text table (not UTF-8 text)") from None
    comments, numbered = [], []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not numbered:
                comments.append(line)
            continue
        numbered.append((number, line))
    if not numbered:
        raise SignalError("empty file: no rows of values")
    delimiter = _choose_delimiter(suffix, numbered[0][1])
    rows = _split_rows([line for _, line in numbered], delimiter)
    numbers = [number for number, _ in numbered]

    header = None
    if _is_header(rows[0], rows[1] if len(rows) > 1 else None):
        header, rows, numbers = tuple(rows[0]), rows[1:], numbers[1:]
        if not rows:
            raise SignalError("only a header row, no values")
    width = len(header) if header is not None else len(rows[0])
    for number, cells in zip(numbers, rows, strict=True):
        if len(cells) != width:
            raise SignalError(
                f"ragged table: line {number} has {len(cells)} values, expected {width}"
            )
    time_index = _time_column_index(time_column, header, width)
    value_columns = [j for j in range(width) if j != time_index]
    if not value_columns:
        raise SignalError("the table has only the time column, no values to filter")
    data = _parse_values(rows, numbers, value_columns)
    time = tuple(cells[time_index] for cells in rows) if time_index is not None else None
    return Signal(
        data,
        "text",
        delimiter=delimiter,
        header=header,
        time=time,
        time_index=time_index,
        comments=tuple(comments),
    )


def _choose_delimiter(suffix, first_line):
    default = _DELIMITERS[suffix]
    if default is not None and default in first_line:
        return default
    for candidate in ("\t", ",", ";"):
        if candidate in first_line:
            return candidate
    return default


def _split_rows(lines, delimiter):
    if delimiter is None:
        return [line.split() for line in lines]
    return [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]


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


def _parse_values(rows, numbers, columns):
    cells = [[row[j] for j in columns] for row in rows]
    try:
        return np.array(cells, dtype=np.float64)
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


def _write_text(path, source, data, start):
    values = data.reshape(len(data), -1).tolist()
    time = source.time_cells(start, len(values)) if source.time is not None else None
    buffer = io.StringIO()
    for line in source.comments:
        buffer.write(line + "\n")
    if source.delimiter is None:

        def write_row(cells):
            buffer.write(" ".join(cells) + "\n")

    else:
        writer = csv.writer(buffer, delimiter=source.delimiter, lineterminator="\n")
        write_row = writer.writerow
    if source.header is not None:
        write_row(source.header)
    for i, row in enumerate(values):
        cells = [_number_text(v) for v in row]
        if time is not None:
            cells.insert(source.time_index, time[i])
        write_row(cells)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue().encode("utf-8"))


def _number_text(value):
    # 15 significant digits, as spreadsheets show: 0.0287, not 0.028700000000000003
    # (float rounding in the sum). Every decimal of up to 15 digits is kept exactly.
    return format(value, ".15g")
