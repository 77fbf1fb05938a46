"""Exact computation in bands of rows: images larger than memory, bands as tasks.

Output row ``i`` of a layer reads input rows ``i + a*d - o`` (``a < k``; ``o`` from the
mode, :func:`dilcli.core.conv.axis_geometry`), extended by the boundary rule in the
coordinates of the layer's whole input. So the output rows of a band can be computed
from a few input rows: gather exactly the rows the taps read, mapped by the boundary
rule over the whole height (``wrap`` reads the far edge; a dilation wider than the
image reads it many times over; ``constant`` reads ``cval``), then run the very same
engine on the gathered rows with mode ``'valid'`` on rows and the layer's own mode on
columns (full width). Every output value is then the same sum of the same products in
the same order as in the whole-image computation: the results are bit-identical
(docs/design.md, section 18; ``tests/test_tiling.py``).

A job is a small graph of :class:`KernelStep` and :class:`LayerStep`: each step reads
the output of an earlier one (``source``; 0 is the input). ``convolve`` at four
dilations is four steps reading the input; a context stack or the starlet is a chain.
For a band, the rows each step must produce are propagated backwards from the rows the
job writes (``emit``), so a deep stack computes every layer only on the rows that the
band's outputs need (fused: no layer streams the whole image). Gathered rows are a
contiguous run when the dilation is at most the run's length, else ``k`` blocks of the
run's length read at a smaller row dilation: memory follows the rows read, never the
dilation.

The core opens no files: input rows come from ``read_rows(r0, r1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dilcli.core.conv import axis_geometry
from dilcli.core.engine import boundary_indices


@dataclass(frozen=True, kw_only=True)
class _Step:
    """What every step shares: how its kernel meets its input, and which input."""

    mode: str = "same"
    boundary: str = "reflect"
    cval: float = 0.0
    flip: bool = False
    source: int = 0  # 0: the input; n: step n's output


@dataclass(frozen=True)
class KernelStep(_Step):
    """A kernel (:class:`dilcli.core.kernels.Kernel`; a gradient pair's magnitude) at
    ``dilation``, on every channel of step ``source``'s output, as
    :func:`dilcli.core.conv.apply_kernel` computes it."""

    kernel: object
    dilation: int

    @property
    def kernel_shape(self):
        shapes = {part.shape for part in self.kernel.parts}
        if len(shapes) != 1:
            raise ValueError("the parts of a kernel must have one shape to be streamed")
        return shapes.pop()

    @property
    def dilations(self):
        return (self.dilation, self.dilation)

    def out_channels(self, channels):
        return channels

    keeps_channel_axis = True  # an (H, W) input gives an (H, W) output

    def scratch_bytes(self, rows, width, itemsize):
        return 0  # the engines' strips: a few hundred KiB, fixed

    def compute(self, rows, row_dilation):
        from dilcli.core.conv import apply_kernel

        with np.errstate(over="ignore", invalid="ignore"):  # as the whole-image path
            return apply_kernel(
                rows,
                self.kernel,
                (row_dilation, self.dilation),
                mode=("valid", self.mode),
                boundary=self.boundary,
                cval=self.cval,
                flip=self.flip,
            )


@dataclass(frozen=True)
class LayerStep(_Step):
    """One :class:`dilcli.core.stacks.Layer` (bias and ReLU included), on step
    ``source``'s output, as :func:`dilcli.core.stacks.apply_layer` computes it."""

    layer: object

    @property
    def kernel_shape(self):
        return tuple(self.layer.kernel_shape)

    @property
    def dilations(self):
        return (self.layer.dilation, self.layer.dilation)

    def out_channels(self, channels):
        return self.layer.out_channels(channels)

    @property
    def keeps_channel_axis(self):
        return not self.layer.mixes_channels

    def scratch_bytes(self, rows, width, itemsize):
        from dilcli.core.stacks import mixing_scratch_bytes

        return mixing_scratch_bytes(self.layer, rows, width, itemsize)

    def compute(self, rows, row_dilation):
        from dilcli.core.stacks import apply_layer

        return apply_layer(
            rows,
            self.layer,
            mode=("valid", self.mode),
            boundary=self.boundary,
            cval=self.cval,
            flip=self.flip,
            dilation=(row_dilation, self.layer.dilation),
        )


def chain(layers, *, mode="same", boundary="reflect", cval=0.0, flip=False):
    """The steps of a stack: layer ``i`` reads layer ``i - 1`` (0 is the input)."""
    options = dict(mode=mode, boundary=boundary, cval=cval, flip=flip)
    return tuple(LayerStep(layer, source=i, **options) for i, layer in enumerate(layers))


@dataclass(frozen=True)
class BandPlan:
    """How an input of ``input_shape`` is computed in bands of ``band_rows`` input rows.

    ``emit`` holds the numbers of the outputs the job writes (0: the input itself,
    ``i``: step ``i - 1``'s output). Outputs of other heights (modes ``valid`` and
    ``full``) are cut where their rows line up with the input's band edges, so every
    output row belongs to exactly one band.
    """

    steps: tuple
    input_shape: tuple
    emit: frozenset
    band_rows: int
    itemsize: int = 4

    def __post_init__(self):
        if not self.steps:
            raise ValueError("a band plan needs at least one step")
        if self.band_rows < 1:
            raise ValueError(f"band_rows must be at least 1, got {self.band_rows}")
        shapes = [self.input_shape]
        shifts = [0]
        for number, step in enumerate(self.steps, 1):
            if not 0 <= step.source < number:
                raise ValueError(f"step {number} reads output {step.source}, not an earlier one")
            height, width = shapes[step.source][:2]
            channels = shapes[step.source][2] if len(shapes[step.source]) == 3 else 1
            (kh, kw), (dh, dw) = step.kernel_shape, step.dilations
            top, _, rows = axis_geometry(height, kh, dh, step.mode)
            _, _, columns = axis_geometry(width, kw, dw, step.mode)
            source_2d = len(shapes[step.source]) == 2
            if source_2d and step.keeps_channel_axis:
                shapes.append((rows, columns))
            else:
                shapes.append((rows, columns, step.out_channels(channels)))
            # Output row x is centred on input row x + centre (section 3's offsets).
            shifts.append(shifts[step.source] + ((kh - 1) * dh) // 2 - top)
        object.__setattr__(self, "shapes", tuple(shapes))
        object.__setattr__(self, "shifts", tuple(shifts))

    @property
    def height(self):
        return self.input_shape[0]

    @property
    def bands(self):
        return -(-self.height // self.band_rows)

    def ranges(self, band):
        """Rows ``(r0, r1)`` of every output (0: the input) that ``band`` writes."""
        result = []
        for (height, *_), shift in zip(self.shapes, self.shifts):
            start = 0 if band == 0 else min(max(band * self.band_rows - shift, 0), height)
            stop = (
                height
                if band == self.bands - 1
                else min(max((band + 1) * self.band_rows - shift, 0), height)
            )
            result.append((start, max(start, stop)))
        return result

    def needs(self, band):
        """Sorted row indices of every output (0: the input) that ``band`` computes."""
        ranges = self.ranges(band)
        empty = np.zeros(0, np.int64)
        needed = [
            np.arange(*ranges[n], dtype=np.int64) if n in self.emit else empty
            for n in range(len(self.shapes))
        ]
        for number in range(len(self.steps), 0, -1):
            step = self.steps[number - 1]
            height = self.shapes[step.source][0]
            rows = [
                mapped[mapped >= 0] for _, _, mapped, _ in _gathers(step, needed[number], height)
            ]
            needed[step.source] = np.union1d(needed[step.source], np.concatenate([empty, *rows]))
        return needed

    def work_ratio(self):
        """Rows the steps compute for a middle band over the rows that band is theirs
        (1.0: no halo recomputed; a deep stack in thin bands recomputes every layer's
        halo for each band)."""
        band = self.bands // 2
        needed, ranges = self.needs(band), self.ranges(band)
        computed = sum(len(rows) for rows in needed[1:])
        own = sum(stop - start for start, stop in ranges[1:])
        return computed / max(own, 1)

    def halo(self):
        """Input rows read above and below a middle band beyond its own: (top, bottom)."""
        band = self.bands // 2
        rows = self.needs(band)[0]
        start, stop = self.ranges(band)[0]
        if rows.size == 0:
            return (0, 0)
        return (max(0, start - int(rows[0])), max(0, int(rows[-1]) + 1 - stop))

    def working_memory(self):
        """Bytes a band holds at most (an estimate from the rows it reads and makes)."""
        samples = {0, self.bands // 2, self.bands - 1}
        return max(self._band_bytes(band) for band in samples)

    def _band_bytes(self, band):
        """The most a band holds at once, following :func:`compute_band` step by step:
        the outputs still to be read (or written), and at a step the rows it gathers
        (a copy, unless they are one run of rows inside the source), the outputs it
        makes (a gradient pair makes two), a concatenation of them when the rows come
        in several runs, and its scratch (channel mixing's chunk of tap values)."""
        needed = self.needs(band)
        row_bytes = [int(np.prod(shape[1:])) * self.itemsize for shape in self.shapes]
        readers = [0] * len(needed)
        for step in self.steps:
            readers[step.source] += 1
        held = {0: len(needed[0]) * row_bytes[0]}
        peak = held[0]
        for number, step in enumerate(self.steps, 1):
            height = self.shapes[step.source][0]
            gathers = _gathers(step, needed[number], height)
            made = len(needed[number]) * row_bytes[number]
            copies = len(step.kernel.parts) if isinstance(step, KernelStep) else 1
            gathered = max(
                (
                    mapped.size * row_bytes[step.source]
                    for _, _, mapped, _ in gathers
                    if not _is_run(mapped)
                ),
                default=0,
            )
            transient = gathered + copies * made + (made if len(gathers) > 1 else 0)
            transient += step.scratch_bytes(
                len(needed[number]), self.shapes[number][1], self.itemsize
            )
            peak = max(peak, sum(held.values()) + transient)
            held[number] = made
            readers[step.source] -= 1
            for done in (step.source, number):  # what compute_band lets go (settle)
                if not readers[done] and done not in self.emit:
                    held.pop(done, None)
        return peak


def plan_bands(steps, input_shape, *, emit, budget, itemsize=4, band_rows=None):
    """A :class:`BandPlan` whose bands hold at most ``budget`` bytes, as tall as that
    allows (``band_rows`` forces a height)."""
    emit = frozenset(emit)
    steps = tuple(steps)
    height = input_shape[0]
    if band_rows is not None:
        return BandPlan(steps, tuple(input_shape), emit, max(1, min(band_rows, height)), itemsize)

    def fits(rows):
        return BandPlan(steps, tuple(input_shape), emit, rows, itemsize).working_memory() <= budget

    low, high = 1, height
    if fits(high):
        low = high
    while low < high:  # the tallest band that fits; 1 row if none does
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return BandPlan(steps, tuple(input_shape), emit, low, itemsize)


def _runs(rows):
    """Contiguous runs ``(start, stop)`` of sorted unique ``rows``."""
    if rows.size == 0:
        return []
    breaks = np.nonzero(np.diff(rows) != 1)[0] + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops)]


def _gathers(step, rows, height):
    """For each run of output ``rows``: (start, stop, input rows to gather, row dilation).

    The input rows are indices in ``[0, height)`` by the boundary rule, or -1 for
    ``constant``'s ``cval``. A run of ``m`` rows at dilation ``d <= m`` reads one
    contiguous stretch of ``m + (k - 1) d`` rows; at ``d > m`` it reads ``k`` blocks of
    ``m`` rows, which the same kernel at row dilation ``m`` then meets exactly.
    """
    (k, _), (d, _) = step.kernel_shape, step.dilations
    offset = axis_geometry(height, k, d, step.mode)[0]
    result = []
    for start, stop in _runs(rows):
        length = stop - start
        if d <= length:
            virtual = np.arange(start - offset, stop - offset + (k - 1) * d, dtype=np.int64)
            row_dilation = d
        else:
            taps = np.arange(k, dtype=np.int64)[:, np.newaxis] * d
            virtual = (taps + np.arange(start - offset, stop - offset, dtype=np.int64)).ravel()
            row_dilation = length
        if step.boundary == "constant":
            mapped = np.where((virtual >= 0) & (virtual < height), virtual, -1)
        else:
            mapped = boundary_indices(virtual, height, step.boundary)
        result.append((start, stop, mapped, row_dilation))
    return result


def _is_run(mapped):
    """Whether ``mapped`` is one run of consecutive rows inside the source."""
    return bool(mapped.size) and mapped[0] >= 0 and bool(np.all(np.diff(mapped) == 1))


def _gather(values, rows, mapped, cval):
    """``values`` (rows ``rows`` of an output) at indices ``mapped``; -1 gives ``cval``.

    One run of consecutive rows is a view, not a copy (the middle of an image)."""
    positions = np.searchsorted(rows, mapped)
    if _is_run(mapped):
        return values[positions[0] : positions[0] + mapped.size]
    inside = mapped >= 0
    if inside.all():
        if positions.size and np.all(np.diff(positions) == 1):  # a run of rows: no copy
            return values[positions[0] : positions[0] + positions.size]
        return values[positions]
    gathered = np.empty((mapped.size,) + values.shape[1:], values.dtype)
    gathered[inside] = values[positions[inside]]
    gathered[~inside] = cval
    return gathered


def read_input_rows(read_rows, rows):
    """Rows ``rows`` (sorted unique) of the input, read run by run."""
    parts = [np.asarray(read_rows(start, stop)) for start, stop in _runs(rows)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def compute_band(plan, band, read_rows):
    """The rows of every output in ``plan.emit`` that ``band`` writes, as ``{n: array}``.

    Bit-identical to the same rows of the whole-image computation.
    """
    needed = plan.needs(band)
    ranges = plan.ranges(band)
    values = {0: read_input_rows(read_rows, needed[0]) if needed[0].size else _empty_rows(plan, 0)}
    readers = [0] * len(needed)  # steps still to read each output
    for step in plan.steps:
        readers[step.source] += 1
    emitted = {}

    def settle(number):
        """Keep only what ``number`` is still needed for."""
        if readers[number] or number not in values:
            return
        data = values.pop(number)
        if number in plan.emit:
            start, stop = ranges[number]
            first = np.searchsorted(needed[number], start)
            emitted[number] = data[first : first + stop - start]

    settle(0)
    for number, step in enumerate(plan.steps, 1):
        rows = needed[number]
        source_rows, source = needed[step.source], values.get(step.source)
        height = plan.shapes[step.source][0]
        parts = []
        for _, _, mapped, row_dilation in _gathers(step, rows, height):
            # No name keeps the gathered rows: they are freed as soon as they are used,
            # not when the next step gathers its own.
            parts.append(
                step.compute(_gather(source, source_rows, mapped, step.cval), row_dilation)
            )
        if not parts:
            values[number] = _empty_rows(plan, number)
        else:
            values[number] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        readers[step.source] -= 1
        settle(step.source)
        settle(number)
    for number in plan.emit:
        if number not in emitted:  # nothing of it in this band
            emitted[number] = _empty_rows(plan, number)
    return emitted


def _empty_rows(plan, number):
    return np.zeros((0,) + tuple(plan.shapes[number][1:]), f"f{plan.itemsize}")


def iterate_bands(plan, read_rows):
    """``(band, {n: rows})`` for every band in order; see :func:`compute_band`."""
    for band in range(plan.bands):
        yield band, compute_band(plan, band, read_rows)
