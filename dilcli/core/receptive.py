"""Receptive fields of stacks of dilated layers: sizes, coverage, gridding, suggestions.

A layer is (kernel size ``k``, dilation ``d``, stride ``s``): a
:class:`dilcli.core.layers.Layer` (geometry alone, or the weights of a stack that runs),
a ``(k, d[, s])`` tuple, or any object with ``kernel``, ``dilation`` and ``stride``; a
stack is a list of layers, input first. The recurrence of docs/design.md (section 5),
with ``RF_0 = 1`` and ``J_0 = 1``::

    RF_l = RF_{l-1} + (k_l - 1) * d_l * J_{l-1},    J_l = J_{l-1} * s_l

One output of the stack sees the input positions ``sum_l t_l * r_l`` (``0 <= t_l < k_l``)
of its receptive-field box, where ``r_l = d_l * J_{l-1}`` is the layer's step measured
in input pixels: the footprint is a Minkowski sum of arithmetic progressions. It is kept
as a Python int used as a bit set (bit ``i`` = position ``i`` of the box), so it is exact
at any size and needs no numpy. Square k x k layers with the same dilation on both
axes have the Cartesian square of the 1-D footprint as their 2-D footprint, so 2-D
coverage is the square of the 1-D coverage.

Sizes are bounded so every answer comes in seconds and in little memory: a stack has
at most :data:`MAX_LAYERS` layers and a receptive field and jump of at most
:data:`MAX_FIELD` (:func:`make_stack` and :func:`as_layers` refuse more, with a
ValueError); coverage is computed while the field is at most :data:`MAX_FOOTPRINT`
positions wide and following the footprint takes at most :data:`MAX_FOOTPRINT_WORK`
bit operations (the footprint is kept as a gcd, a head and a full middle run, see
:class:`_Footprint`, so hole-free stacks cost nothing per layer); dense arrays (the
2-D footprint, the effective receptive field) have at most :data:`MAX_DENSE_CELLS`
cells.

Pure Python: numpy is imported only inside the functions that return arrays, so
printing a table stays fast.
"""

from __future__ import annotations

import math

# One layer for every stack: the geometry read here is the geometry of the stack that
# runs (dilcli.core.stacks); ``receptive.Layer`` is that class.
from dilcli.core.layers import Layer, padding_before

# The paper's context module (Table 1), the seed's and WaveNet's stacks: the vocabulary
# holds them once.
from dilcli.vocab import (
    CONTEXT_DILATIONS,
    CONTEXT_LARGE_CHANNELS,
    DEFAULT_CONTEXT_CHANNELS,
    WAVENET_DILATIONS,
    size_text,
)
from dilcli.vocab import CONTEXT_KERNEL_SIZES as CONTEXT_KERNELS

# Search effort of the schedule suggestions: enough for exhaustive answers at usual
# sizes, bounded for deep stacks (the best schedules found so far are returned).
_SEARCH_NODE_LIMIT = 200_000
_SEARCH_MAX_DEPTH = 200  # deeper stacks get the greedy schedule (no recursion limit)

#: Most layers in a stack: :func:`make_stack` and :func:`as_layers` refuse more.
MAX_LAYERS = 100_000
#: Largest receptive field and jump (input pixels) of a stack: past it, refused. Far past
#: 2**63 (sizes are exact Python ints), yet every number still prints in 101 digits.
MAX_FIELD = 10**100


def make_stack(dilations, kernels=3, strides=1):
    """Layers from dilations; ``kernels`` and ``strides`` are one int or one per layer.

    >>> make_stack([1, 2], kernels=3, strides=[2, 1])
    [Layer(kernel=3, dilation=1, stride=2), Layer(kernel=3, dilation=2, stride=1)]
    """
    dilations = list(dilations)
    if not dilations:
        raise ValueError("a stack needs at least one layer")
    _check_length(len(dilations))
    columns = {}
    for name, values in (("kernels", kernels), ("strides", strides)):
        values = [values] * len(dilations) if isinstance(values, int) else list(values)
        if len(values) == 1:
            values = values * len(dilations)
        if len(values) != len(dilations):
            raise ValueError(
                f"{len(values)} {name} for {len(dilations)} dilations: give one, or one per layer"
            )
        columns[name] = values
    layers = [
        Layer(k, d, s)
        for k, d, s in zip(columns["kernels"], dilations, columns["strides"], strict=True)
    ]
    _check_sizes(layers)
    return _Checked(layers)


def as_layers(layers):
    """A list of :class:`Layer` from layers, ``(kernel, dilation[, stride])`` tuples or
    objects with ``kernel``, ``dilation`` (and ``stride``) attributes.

    Raises ValueError for an empty stack, more than :data:`MAX_LAYERS` layers, or a
    receptive field or jump past :data:`MAX_FIELD`.
    """
    if isinstance(layers, _Checked):
        return layers
    result = [layer if isinstance(layer, Layer) else _as_layer(layer) for layer in layers]
    if not result:
        raise ValueError("a stack needs at least one layer")
    _check_length(len(result))
    _check_sizes(result)
    return _Checked(result)


def _as_layer(layer):
    if hasattr(layer, "kernel") and hasattr(layer, "dilation"):
        return Layer(layer.kernel, layer.dilation, getattr(layer, "stride", 1))
    return Layer(*layer)


class _Checked(list):
    """A list of layers :func:`as_layers` has checked, so it is not checked again."""

    __slots__ = ()


def _check_length(count):
    if count > MAX_LAYERS:
        raise ValueError(f"{count} layers: dilcli takes stacks of at most {MAX_LAYERS} layers")


def _check_sizes(layers):
    """Refuse a stack whose receptive field or jump passes :data:`MAX_FIELD`."""
    field, jump = 1, 1
    for index, layer in enumerate(layers, 1):
        field += (layer.kernel - 1) * layer.dilation * jump
        jump *= layer.stride
        if field > MAX_FIELD or jump > MAX_FIELD:
            what = "receptive field" if field > MAX_FIELD else "jump (product of the strides)"
            raise ValueError(
                f"the {what} passes 10**100 input pixels at layer {index}: "
                "dilcli takes stacks up to that size"
            )


def context_module(*, large=False, channels=DEFAULT_CONTEXT_CHANNELS):
    """The paper's context module: ``(layers, [(c_in, c_out), ...])`` for ``C = channels``."""
    layers = make_stack(CONTEXT_DILATIONS, kernels=CONTEXT_KERNELS)
    outputs = [m * channels for m in CONTEXT_LARGE_CHANNELS] if large else [channels] * 8
    return layers, list(zip([channels, *outputs[:-1]], outputs, strict=True))


def wavenet_stack(repeat=1):
    """WaveNet's causal stack: kernel 2 at dilations 1, 2, ..., 512, ``repeat`` times."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    most = MAX_LAYERS // len(WAVENET_DILATIONS)
    if repeat > most:
        raise ValueError(f"repeat must be at most {most} (a stack has at most {MAX_LAYERS} layers)")
    return make_stack(WAVENET_DILATIONS * repeat, kernels=2)


# --- sizes --------------------------------------------------------------------------


def jumps(layers):
    """``J_l``: the spacing, in input pixels, of the outputs of each layer."""
    result, jump = [], 1
    for layer in as_layers(layers):
        jump *= layer.stride
        result.append(jump)
    return result


def steps(layers):
    """``r_l = d_l * J_{l-1}``: each layer's tap spacing measured in input pixels."""
    result, jump = [], 1
    for layer in as_layers(layers):
        result.append(layer.dilation * jump)
        jump *= layer.stride
    return result


def receptive_fields(layers):
    """Receptive field (per axis) after each layer.

    >>> receptive_fields([(3, 1), (3, 2), (3, 4), (3, 8)])
    [3, 7, 15, 31]
    """
    result, field = [], 1
    for layer, step in zip(as_layers(layers), steps(layers), strict=True):
        field += (layer.kernel - 1) * step
        result.append(field)
    return result


def causal_receptive_fields(layers):
    """Past samples (the present one included) reaching the output of a causal 1-D stack.

    The same numbers as :func:`receptive_fields`: causal padding moves the window
    entirely into the past but does not change its size. Kernel 2 at dilations
    1, 2, ..., 512 reaches 1024 samples.
    """
    return receptive_fields(layers)


def output_positions(layers, *, causal=False):
    """Where the output sits in the receptive-field box after each layer (0 = left).

    ``same`` padding puts ``((k - 1) d) // 2`` of each layer's span before the output,
    as :func:`dilcli.conv.dilated_correlate` does; ``causal`` puts all of it before
    (:func:`dilcli.core.layers.padding_before`, the one rule).
    """
    mode = "causal" if causal else "same"
    result, position = [], 0
    for layer, step in zip(as_layers(layers), steps(layers), strict=True):
        position += padding_before(layer.span, mode) * (step // layer.dilation)
        result.append(position)
    return result


def receptive_field_shapes(layers):
    """Receptive field of each layer along each spatial axis, as a tuple per layer.

    For layers whose kernels differ between axes (a 3x5 kernel): ``(rows, columns)``
    for 2-D weights, ``(n,)`` for 1-D ones; a layer given by its size counts the same on
    every axis.

    >>> receptive_field_shapes([Layer([[1, 2, 1]]), Layer(3, 2)])
    [(1, 3), (5, 7)]
    """
    layers = list(layers)
    ndim = max((getattr(layer, "ndim", None) or 1 for layer in layers), default=1)
    per_axis = [
        receptive_fields([_as_layer_along(layer, axis) for layer in layers]) for axis in range(ndim)
    ]
    return list(zip(*per_axis, strict=True))


def _as_layer_along(layer, axis):
    return layer.along(axis) if isinstance(layer, Layer) else layer


# --- footprint and coverage ---------------------------------------------------------

#: Widest receptive field whose footprint (and so coverage) is computed, in positions
#: per axis; a dense footprint bit set is at most this many bits (2 MiB).
MAX_FOOTPRINT = 1 << 24
#: Most bit operations spent following one stack's footprint (about a second): past
#: them coverage is unknown (None in :func:`layer_stats`, ValueError elsewhere). Only
#: stacks whose holes never close over thousands of wide layers come near it.
MAX_FOOTPRINT_WORK = 1 << 34
#: Most bits :func:`footprint_masks` returns over all layers (32 MiB).
MAX_FOOTPRINT_LIST = 1 << 28
#: Most cells of a dense array: :func:`footprint_2d` (bools) and
#: :func:`effective_receptive_field` (float64, 32 MiB); 2048 x 2048 in 2-D.
MAX_DENSE_CELLS = 1 << 22
#: Most multiply-adds :func:`effective_receptive_field` spends (a few seconds).
MAX_EFFECTIVE_WORK = 1 << 30


def _shift_union(bits, step, taps, mask=None):
    """``bits | bits << step | ... | bits << (taps - 1) * step``, in about 2 log2(taps)
    shifts (the progression doubles), each cut to ``mask`` when one is given."""
    done = 1
    while 2 * done <= taps:
        bits |= bits << (done * step)
        if mask is not None:
            bits &= mask
        done *= 2
    if done < taps:
        bits |= bits << ((taps - done) * step)
        if mask is not None:
            bits &= mask
    return bits


def _shift_cost(taps):
    return 2 * max(1, taps.bit_length())


def _spread(bits, factor):
    """Bit ``i`` of ``bits`` moved to bit ``i * factor``."""
    if factor == 1 or bits <= 1:
        return bits
    return int(("0" * (factor - 1)).join(format(bits, "b")), 2)


class _Footprint:
    """The 1-D footprint of a stack, layer by layer, in time and memory that follow its
    irregular part, not the width of its box.

    Every footprint is a Minkowski sum of progressions symmetric about their middle, so
    it is symmetric about the middle of its box too. It is kept as: ``unit``, the gcd of
    the steps so far (every position is a multiple of it; 0 before a spatial layer);
    ``span``, the box's last position in units; and ``head``, the bits of its first
    ``size`` positions, with every position of ``[size, span - size]`` reached and the
    end the mirror image of the head. When the middle position is a hole there is no
    such run: then ``size`` is ``span + 1`` and ``head`` is the whole set.

    A layer whose step (in units) is at most the length of that middle run keeps it one
    run: the run grows arithmetically and only the head is shifted onto itself (cut at
    ``size``), so a hole-free stack costs nothing per layer however wide its field. A
    longer step, or a finer unit (the gcd drops), needs the whole set as a bit set: at
    most :data:`MAX_FOOTPRINT` bits. Past that, or past :data:`MAX_FOOTPRINT_WORK` bit
    operations in all, :attr:`known` turns False for good.
    """

    __slots__ = ("unit", "span", "size", "head", "whole", "reached", "work", "known")

    def __init__(self):
        self.unit, self.span, self.size, self.head = 0, 0, 0, 0
        self.whole, self.reached = 1, 1  # the whole set while it is at hand, its count
        self.work, self.known = 0, True

    def add(self, kernel, step):
        """One more layer: ``kernel`` taps ``step`` input pixels apart."""
        if kernel == 1 or not self.known:
            return
        unit = math.gcd(self.unit, step)
        if self.unit and unit != self.unit:
            factor = self.unit // unit
            span = self.span * factor
            # Spreading bits goes through text: a few hundred times slower than a shift.
            if span >= MAX_FOOTPRINT or not self._charge(span * 256 + self._whole_cost()):
                self.known = False
                return
            self._keep(_spread(self._whole(), factor), span)
        self.unit = unit
        step //= unit
        if step <= self.span - 2 * self.size + 1:  # the middle run stays one run
            self.span += (kernel - 1) * step
            self.whole = None
            if self.size:
                taps = min(kernel, -(-self.size // step))  # taps landing in the head
                if not self._charge(self.size * (_shift_cost(taps) + 4)):
                    return
                head = _shift_union(self.head, step, taps, (1 << self.size) - 1)
                self.size = (~head & ((1 << self.size) - 1)).bit_length()
                self.head = head & ((1 << self.size) - 1)
            self.reached = 2 * self.head.bit_count() + self.span - 2 * self.size + 1
            return
        span = self.span + (kernel - 1) * step
        cost = span * (_shift_cost(kernel) + 6) + self._whole_cost()
        if span >= MAX_FOOTPRINT or not self._charge(cost):
            self.known = False
            return
        self._keep(_shift_union(self._whole(), step, kernel), span)

    def count(self):
        """Positions reached (None when not :attr:`known`)."""
        return self.reached if self.known else None

    def full(self):
        """True when every position of the box is reached."""
        return self.known and self.size == 0 and (self.span == 0 or self.unit == 1)

    def mask(self):
        """The footprint as a bit set over the box, in input pixels."""
        return _spread(self._whole(), max(1, self.unit))

    def _charge(self, bits):
        self.work += bits
        if self.work > MAX_FOOTPRINT_WORK:
            self.known = False
        return self.known

    def _whole_cost(self):
        return 0 if self.whole is not None else 8 * (self.span + 1)

    def _whole(self):
        if self.whole is None:
            size, span = self.size, self.span
            middle = ((1 << (span - 2 * size + 1)) - 1) << size
            tail = _reverse(self.head, size) << (span - size + 1) if size else 0
            self.whole = self.head | middle | tail
        return self.whole

    def _keep(self, bits, span):
        """Keep ``bits`` (a footprint over ``[0, span]``) as head and middle run."""
        self.span, self.whole, self.reached = span, bits, bits.bit_count()
        self.size = (~bits & ((1 << (span // 2 + 1)) - 1)).bit_length()
        if 2 * self.size > span:  # the middle position is a hole: keep it all
            self.size, self.head = span + 1, bits
        else:
            self.head = bits & ((1 << self.size) - 1)


_BIT_REVERSED = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _reverse(bits, size):
    """The ``size`` low bits of ``bits`` in reverse order (bit i to bit size - 1 - i)."""
    length = (size + 7) // 8
    data = bits.to_bytes(length, "little").translate(_BIT_REVERSED)
    return int.from_bytes(data, "big") >> (8 * length - size)


def _footprints(layers):
    """A :class:`_Footprint` after each layer, the same object updated in place."""
    footprint = _Footprint()
    for layer, step in zip(layers, steps(layers), strict=True):
        footprint.add(layer.kernel, step)
        yield footprint


def _final_footprint(layers):
    """The stack's :class:`_Footprint`; ValueError when it cannot be followed."""
    layers = as_layers(layers)
    field = receptive_fields(layers)[-1]
    if field > MAX_FOOTPRINT:
        raise ValueError(
            f"receptive field {field} is too wide to map (at most {MAX_FOOTPRINT} positions)"
        )
    footprint = None
    for footprint in _footprints(layers):
        if not footprint.known:
            raise ValueError(
                f"the footprint of these {len(layers)} layers takes over "
                f"{MAX_FOOTPRINT_WORK} bit operations to follow"
            )
    return footprint


def iter_footprint_masks(layers):
    """The 1-D footprint after each layer, as int bit sets, one at a time.

    Raises ValueError past :data:`MAX_FOOTPRINT` positions (before the first).
    """
    layers = as_layers(layers)
    field = receptive_fields(layers)[-1]
    if field > MAX_FOOTPRINT:
        raise ValueError(
            f"receptive field {field} is too wide to map (at most {MAX_FOOTPRINT} positions)"
        )
    mask = 1
    for layer, step in zip(layers, steps(layers), strict=True):
        mask = _shift_union(mask, step, layer.kernel)
        yield mask


def footprint_masks(layers):
    """The 1-D footprint after each layer, as int bit sets (bit i: position i of the box).

    Raises ValueError past :data:`MAX_FOOTPRINT` positions, or when the masks of all
    layers together pass :data:`MAX_FOOTPRINT_LIST` bits (use
    :func:`iter_footprint_masks`, or :func:`layer_stats` for the counts).
    """
    layers = as_layers(layers)
    masks = iter_footprint_masks(layers)  # refuses a field too wide at the first mask
    total = sum(receptive_fields(layers))
    if total > MAX_FOOTPRINT_LIST:
        next(masks)
        raise ValueError(
            f"the footprints of these {len(layers)} layers take {total} bits together "
            f"(at most {MAX_FOOTPRINT_LIST} are listed)"
        )
    return list(masks)


def footprint_mask(layers):
    """The stack's 1-D footprint as an int bit set.

    Raises ValueError past :data:`MAX_FOOTPRINT` positions or
    :data:`MAX_FOOTPRINT_WORK` bit operations.
    """
    return _final_footprint(layers).mask()


def footprint_1d(layers):
    """Which positions of the receptive-field box reach the output, left to right.

    Raises ValueError past :data:`MAX_DENSE_CELLS` positions.

    >>> footprint_1d([(3, 2), (3, 2)])
    [True, False, True, False, True, False, True, False, True]
    """
    _check_dense(receptive_fields(layers)[-1], 1, "footprint")
    mask = footprint_mask(layers)
    return [bool(mask >> i & 1) for i in range(mask.bit_length())]


def footprint_2d(layers):
    """Boolean ``(RF, RF)`` numpy array: input pixels that reach the output.

    Raises ValueError past :data:`MAX_DENSE_CELLS` pixels (2048 x 2048).
    """
    import numpy as np

    _check_dense(receptive_fields(layers)[-1], 2, "footprint")
    row = np.array(footprint_1d(layers), dtype=bool)
    return np.logical_and.outer(row, row)


def _check_dense(field, ndim, what):
    if field**ndim > MAX_DENSE_CELLS:
        side = math.isqrt(MAX_DENSE_CELLS) if ndim == 2 else MAX_DENSE_CELLS
        raise ValueError(
            f"receptive field {field} is too wide for a dense {ndim}-D {what} "
            f"(at most {side} per axis)"
        )


def coverage_fraction(layers, ndim=2):
    """Exact share of the receptive-field box that reaches the output, a Fraction.

    Raises ValueError past :data:`MAX_FOOTPRINT` positions or
    :data:`MAX_FOOTPRINT_WORK` bit operations.
    """
    from fractions import Fraction

    footprint = _final_footprint(layers)
    return Fraction(footprint.count(), footprint.span * max(1, footprint.unit) + 1) ** ndim


def coverage(layers, ndim=2):
    """Share (0..1) of the receptive-field box that reaches the output.

    >>> coverage([(3, 2), (3, 2), (3, 2)]) == 49 / 169
    True
    """
    return float(coverage_fraction(layers, ndim))


def is_hole_free(layers):
    """True if every pixel of the receptive-field box reaches the output."""
    return _final_footprint(layers).full()


def share_text(part, whole):
    """A share as a percentage that never rounds a partial share to 100% or 0%.

    >>> share_text(49, 169), share_text(168, 169), share_text(9, 9)
    ('29.0%', '99.4%', '100%')
    """
    if part == whole:
        return "100%"
    value = 100 * part / whole
    if value > 99.9:
        return ">99.9%"
    if value < 0.1:
        return "<0.1%"
    return f"{value:.1f}%"


# --- Hybrid Dilated Convolution (Wang et al. 2018) ------------------------------------


def hdc_values(layers):
    """``M_i`` for each layer (None for 1x1 layers), over the whole stack.

    ``M_L = r_L`` and ``M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i)``,
    with ``r_i`` the layer's step in input pixels (its dilation when strides are 1).
    """
    layers = as_layers(layers)
    rates = steps(layers)
    values = [None] * len(layers)
    following = None
    for i in reversed(range(len(layers))):
        if layers[i].kernel == 1:
            continue
        rate = rates[i]
        if following is None:
            following = rate
        else:
            following = max(following - 2 * rate, following - 2 * (following - rate), rate)
        values[i] = following
    return values


def hdc_verdict(layers):
    """``(verdict, reason)``: 'pass', 'fail' or 'n/a' by the HDC rule, and why.

    The rule (docs/design.md, section 7) asks ``M_2 <= k`` and rates with no common
    factor above 1. It is a sufficient condition only for odd kernels whose first rate
    is 1 (``-d 2,3`` passes it and has holes), and not a necessary one (``1,3,1`` fails
    it and has none): the exact coverage is the verdict. It is stated for stacks of one
    kernel size; for mixed sizes the verdict is 'n/a'.
    """
    return _hdc_verdicts(as_layers(layers))[-1]


def _hdc_verdicts(layers):
    """:func:`hdc_verdict` of every prefix of the stack, in one pass.

    ``M_2`` of the prefix ending at spatial layer ``L`` applies ``M_i = max(|M_{i+1} -
    2 r_i|, r_i)`` from ``M_L = r_L`` down; as soon as ``r_i <= M_{i+1} <= 3 r_i``,
    ``M_i = r_i``, which is where the prefix ending at ``i`` starts, so its ``M_2`` is
    the answer. Runs of equal rates are crossed in one step. Most prefixes stop at once.
    """
    rates, m2s, run_starts = [], [None], []
    sizes, factor, verdicts = set(), 0, []
    for layer, rate in zip(layers, steps(layers), strict=True):
        if layer.kernel > 1:
            same = bool(rates) and rates[-1] == rate
            run_starts.append(run_starts[-1] if same else len(rates))
            rates.append(rate)
            sizes.add(layer.kernel)
            factor = math.gcd(factor, rate)
            if len(rates) >= 2:
                m2s.append(_prefix_m2(rates, m2s, run_starts))
        if not rates:
            verdicts.append(("pass", "no spatial layers"))
        elif len(sizes) > 1:
            verdicts.append(("n/a", "mixed kernel sizes"))
        elif factor > 1:
            verdicts.append(("fail", f"common factor {factor}"))
        elif len(rates) > 1 and m2s[-1] > next(iter(sizes)):
            verdicts.append(("fail", f"M2 = {m2s[-1]} > {next(iter(sizes))}"))
        else:
            verdicts.append(("pass", ""))
    return verdicts


def hdc_reading(layers):
    """``(word, note)``: what the HDC rule tells about holes in this stack.

    The exact coverage is the verdict on holes (docs/design.md, section 6); the rule is
    reported as what it is (section 7), never against it:

    - ``'fail'``: the steps share a factor above 1, so offset 1 is never reached: holes;
    - ``'pass'``: the rule holds where it is a sufficient condition (one odd kernel
      size, first spatial step 1): no holes;
    - ``'not met'``: it does not hold there; a sufficient condition, not a necessary
      one, so this says nothing about holes (``1,3,1`` has none);
    - ``'n/a'``: the rule does not decide here (mixed or even kernels, first step above
      1); the note says why, and what the rule computed.

    >>> hdc_reading([(3, 1), (3, 2), (3, 9)]), hdc_reading([(2, 1), (2, 2), (2, 4)])
    (('not met', 'M2 = 5 > 3'), ('n/a', 'even kernels'))
    """
    return _hdc_readings(as_layers(layers))[-1]


def hdc_not_applicable(layers):
    """Why the HDC rule is not a sufficient condition for this stack ('' when it is):
    kernels of more than one size, even kernels, or a first spatial step above 1."""
    layers = as_layers(layers)
    spatial = [
        (layer.kernel, step)
        for layer, step in zip(layers, steps(layers), strict=True)
        if layer.kernel > 1
    ]
    return _not_applicable({k for k, _ in spatial}, spatial[0][1] if spatial else None)


def _not_applicable(sizes, first):
    if len(sizes) > 1:
        return "mixed kernel sizes"
    if sizes and next(iter(sizes)) % 2 == 0:
        return "even kernels"
    if first is not None and first != 1:
        return f"first rate {first}, not 1"
    return ""


def _hdc_readings(layers):
    """:func:`hdc_reading` of every prefix, from :func:`_hdc_verdicts` in one pass."""
    readings, sizes, first = [], set(), None
    for layer, step, (verdict, note) in zip(
        layers, steps(layers), _hdc_verdicts(layers), strict=True
    ):
        if layer.kernel > 1:
            sizes.add(layer.kernel)
            first = step if first is None else first
        reason = _not_applicable(sizes, first)
        if first is None or (verdict == "fail" and note.startswith("common factor")):
            readings.append((verdict, note))
        elif reason:
            readings.append(("n/a", reason))
        elif verdict == "fail":
            readings.append(("not met", note))
        else:
            readings.append((verdict, note))
    return readings


def _prefix_m2(rates, m2s, run_starts):
    """``M_2`` of the spatial rates ``rates`` (0-based ``M[1]``); ``m2s[j]`` holds it for
    the prefix ending at ``j`` (j >= 1), ``run_starts[j]`` where ``rates[j]``'s run of
    equal rates starts."""
    value, i = rates[-1], len(rates) - 2  # value is M[i + 1]
    while i >= 1:
        rate = rates[i]
        if rate <= value <= 3 * rate:
            return m2s[i]
        low = max(run_starts[i], 1)  # rates[low..i] are all equal to rate
        if value < rate:
            value = 2 * rate - value  # in (rate, 2 rate): the next equal rate resets
            if i - 1 >= low:
                return m2s[i - 1]
            i -= 1
            continue
        length = i - low + 1
        steps_down = -(-(value - 3 * rate) // (2 * rate))  # value > 3 rate until then
        if steps_down >= length:
            value -= 2 * rate * length
            i = low - 1
        else:
            return m2s[i - steps_down]
    return value


# --- the table ------------------------------------------------------------------------


def layer_stats(layers, channels=None, *, ndim=2):
    """One dict per layer: sizes, coverage, parameters and the HDC check.

    Parameters
    ----------
    layers : list of Layer or (kernel, dilation[, stride]) tuples
    channels : int or list of (c_in, c_out), optional
        One int C (every layer C -> C) or one pair per layer. Without it, ``params``
        counts weights per channel pair (``k**ndim``).
    ndim : {1, 2}
        2 for square k x k layers on images, 1 for signals.

    Keys: ``layer`` (1-based), ``kernel``, ``dilation``, ``stride``, ``span`` (one
    dilated kernel, ``(k-1)d+1``), ``jump`` (output spacing in input pixels, ``J_l``),
    ``rf`` (per axis), ``growth`` (``rf`` added by this layer), ``covered`` (input
    pixels reaching the output), ``coverage`` (``covered / rf**ndim``; both None past
    :data:`MAX_FOOTPRINT` positions per axis, or once following the footprint has
    taken :data:`MAX_FOOTPRINT_WORK` bit operations), ``params``,
    ``total_params``, ``hdc_m`` (``M_i`` of the whole stack; None for 1x1 layers),
    ``hdc`` (:func:`hdc_reading` of the layers up to this one: 'pass', 'fail', 'not
    met' or 'n/a') and ``hdc_note``.
    """
    layers = as_layers(layers)
    if ndim not in (1, 2):
        raise ValueError(f"ndim must be 1 or 2, got {ndim!r}")
    pairs = _channel_pairs(channels, len(layers))
    fields = receptive_fields(layers)
    rows, previous, total = [], 1, 0
    for index, (layer, jump, field, footprint, m_value, (verdict, note)) in enumerate(
        zip(
            layers,
            jumps(layers),
            fields,
            _footprints(layers),
            hdc_values(layers),
            _hdc_readings(layers),
            strict=True,
        )
    ):
        params = layer.kernel**ndim
        if pairs is not None:
            params *= pairs[index][0] * pairs[index][1]
        total += params
        reached = footprint.count() if field <= MAX_FOOTPRINT else None
        covered = None if reached is None else reached**ndim
        rows.append(
            {
                "layer": index + 1,
                "kernel": layer.kernel,
                "dilation": layer.dilation,
                "stride": layer.stride,
                "span": layer.span,
                "jump": jump,
                "rf": field,
                "growth": field - previous,
                "covered": covered,
                "coverage": None if covered is None else covered / field**ndim,
                "params": params,
                "total_params": total,
                "hdc_m": m_value,
                "hdc": verdict,
                "hdc_note": note,
            }
        )
        previous = field
    return rows


def _channel_pairs(channels, count):
    if channels is None:
        return None
    if isinstance(channels, int) and not isinstance(channels, bool):
        if not 1 <= channels <= MAX_FIELD:
            raise ValueError(f"channels must be from 1 to 10**100, got {channels}")
        return [(channels, channels)] * count
    pairs = [tuple(pair) for pair in channels]
    if len(pairs) != count or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"channels must be one int or {count} (c_in, c_out) pairs")
    if any(not isinstance(c, int) or not 1 <= c <= MAX_FIELD for pair in pairs for c in pair):
        raise ValueError("channel counts must be integers from 1 to 10**100")
    return pairs


# --- comparison with other ways to the same field -------------------------------------


def compare_designs(layers, channels=None, *, ndim=2):
    """The seed's comparison, in numbers: ways to reach the stack's receptive field.

    Rows for: plain k x k convolutions (dilation 1), k x k convolutions each followed by
    2x2 pooling with stride 2 (until the field is reached), one large kernel, and the
    stack itself; ``k`` is the stack's largest kernel. Each row has ``design``,
    ``layers``, ``params`` (weights per channel pair, or for ``channels`` C -> C when
    given as an int), ``rf``, ``resolution`` (output pixels per input pixel along an
    axis, as text like ``1/8``) and ``coverage``.
    """
    layers = as_layers(layers)
    target = receptive_fields(layers)[-1]
    kernel = max(layer.kernel for layer in layers)
    if channels is not None and not 1 <= channels <= MAX_FIELD:
        raise ValueError(f"channels must be from 1 to 10**100, got {channels}")
    pair_count = channels**2 if channels else 1

    def size(n):
        return size_text(n, ndim)

    def row(design, count, weights, field, jump, reached=-1):
        # reached: positions per axis, None if unknown, -1 for one run (no holes).
        if field > MAX_FOOTPRINT or reached is None:
            share = None
        else:
            share = 1.0 if reached == -1 else _share(reached, field, ndim)
        return {
            "design": design,
            "layers": count,
            "params": pair_count * weights,
            "rf": field,
            "resolution": f"1/{jump}",
            "coverage": share,
        }

    rows = []
    if kernel > 1:
        # Counted, not built: reaching a wide field takes very many plain layers.
        count = max(1, -(-(target - 1) // (kernel - 1)))
        rows.append(
            row(
                f"{size(kernel)} convolutions",
                count,
                count * kernel**ndim,
                1 + count * (kernel - 1),
                1,
            )
        )
        count, field, jump = 1, kernel, 1  # k x k, then (2x2 pool stride 2, k x k) ...
        while field < target:
            field += jump + (kernel - 1) * 2 * jump
            jump *= 2
            count += 2
        convolutions = (count + 1) // 2  # the pools have no weights
        rows.append(
            row(
                f"{size(kernel)} conv + {size(2)} pool",
                count,
                convolutions * kernel**ndim,
                field,
                jump,
            )
        )
    rows.append(row(f"one {size(target)} kernel", 1, target**ndim, target, 1))
    footprint = None
    if target <= MAX_FOOTPRINT:
        *_, footprint = _footprints(layers)
    rows.append(
        row(
            "dilated stack",
            len(layers),
            sum(layer.kernel**ndim for layer in layers),
            target,
            jumps(layers)[-1],
            footprint and footprint.count(),
        )
    )
    return rows


def _share(reached, field, ndim):
    """``(reached / field) ** ndim`` as a float, exactly rounded."""
    return reached**ndim / field**ndim


# --- hole-free schedules ----------------------------------------------------------------


def max_hole_free_field(kernels):
    """Largest receptive field reachable without holes by stride-1 layers of these sizes.

    At most ``prod(k)`` positions can be reached, and dilations 1, k_1, k_1 k_2, ...
    (largest kernels first) reach exactly that many.
    """
    return math.prod(kernels)


def hole_free_schedules(kernels, target, *, strides=1, count=3, effort=_SEARCH_NODE_LIMIT):
    """Dilations, one per layer, with no holes and the smallest receptive field >= target.

    ``kernels`` and ``strides`` are one per layer (or one int each). Layers keep their
    order, kernel sizes and strides; only the dilations change. Returns up to ``count``
    dilation tuples, best first: smallest field, then the most even growth
    (closest to geometric), then smallest largest dilation. An empty list means
    none reaches ``target`` at this depth. ``effort`` bounds the search (nodes
    visited): past it, the best schedules found so far are returned.

    A stack is free of holes exactly when, taking its layers by increasing step
    ``r = d * J`` (1x1 layers aside), each step is at most one more than the span
    already reached, ``sum (k - 1) r``, of the smaller ones: that is what the search
    walks, in layer order, with steps that never decrease between interchangeable
    layers (so each stack of equal layers is found once, in increasing order).
    """
    if isinstance(kernels, int):
        kernels = [kernels]
    kernels = list(kernels)
    strides = [strides] * len(kernels) if isinstance(strides, int) else list(strides)
    if len(strides) != len(kernels):
        raise ValueError("give one stride per kernel")
    layers = make_stack([1] * len(kernels), kernels=kernels, strides=strides)
    entry_jumps = [1, *jumps(layers)[:-1]]
    need = target - 1  # span to reach
    # threshold[i]: least span before layer i from which the greedy rest (each layer
    # the largest step that keeps the stack whole) reaches ``need``: the search prunes
    # in O(1) what it used to check by running the greedy rest.
    threshold = _greedy_thresholds(kernels, entry_jumps, need, capped=False)
    least_rest = [0] * (len(kernels) + 1)  # span added by the rest at dilation 1
    for index in reversed(range(len(kernels))):
        least_rest[index] = least_rest[index + 1] + (kernels[index] - 1) * entry_jumps[index]
    found = []
    nodes = 0
    dilations = []

    def walk(index, span, ratios):
        # ratios: (largest, smallest) growth ratio of the spatial dilations so far, the
        # last spatial dilation; as _unevenness() computes them.
        nonlocal nodes
        nodes += 1
        if index == len(kernels):
            if span >= need:
                key = (span, _ratio_spread(ratios), max(dilations), tuple(dilations))
                found.append(key)
                found.sort()
                del found[count:]
            return
        if nodes > effort or span < threshold[index]:
            return
        if len(found) >= count:
            # No completion can beat the worst kept: the field only grows, and the
            # unevenness of a prefix only grows as ratios are added.
            bound = (max(span + least_rest[index], need), _ratio_spread(ratios))
            if bound > found[-1][:2]:
                return
        k, jump = kernels[index], entry_jumps[index]
        if k == 1:
            dilations.append(1)
            walk(index + 1, span, ratios)
            dilations.pop()
            return
        lowest = 1
        previous = index - 1
        while previous >= 0 and kernels[previous] == 1:
            previous -= 1
        if previous >= 0 and (kernels[previous], entry_jumps[previous]) == (k, jump):
            lowest = dilations[previous]
        largest, smallest, last = ratios
        highest = (span + 1) // jump
        if index == len(kernels) - 1:
            # The last layer: only the ``count`` smallest dilations reaching ``need``
            # can be kept (the field grows with the dilation), so try only those.
            lowest = max(lowest, -(-(need - span) // ((k - 1) * jump)))
            highest = min(highest, lowest + count - 1)
        for dilation in range(lowest, highest + 1):
            if nodes > effort:
                break  # past the effort every call returns at once: stop asking
            if last is None:
                grown = (largest, smallest, dilation)
            else:
                ratio = dilation / last
                grown = (
                    ratio if largest is None else max(largest, ratio),
                    ratio if smallest is None else min(smallest, ratio),
                    dilation,
                )
            dilations.append(dilation)
            walk(index + 1, span + (k - 1) * dilation * jump, grown)
            dilations.pop()

    if len(kernels) <= _SEARCH_MAX_DEPTH:
        walk(0, 0, (None, None, None))
    if not found and threshold[0] <= 0:
        found.append((_capped_greedy(kernels, entry_jumps, need),))
    return [key[-1] for key in found]


def _ratio_spread(ratios):
    largest, smallest, _ = ratios
    return 1.0 if largest is None else round(largest / smallest, 9)


def _greedy_thresholds(kernels, entry_jumps, need, *, capped):
    """``t[i]``: the least span before layer ``i`` from which the greedy rest of the
    stack reaches span ``need`` (``t[len]`` is ``need``); the greedy is monotone.

    A layer of ``k`` taps at entry jump ``J`` takes the step ``(s + 1) // J * J`` after
    span ``s`` (when that is 0 the greedy fails, or with ``capped`` takes ``J``).
    """
    if need < 0 and not capped:
        need = -1  # the greedy's failure (-1) already reaches it: any span will do
    result = [need]
    for k, jump in zip(reversed(kernels), reversed(entry_jumps), strict=True):
        goal = result[-1]
        if k == 1 or (need == -1 and not capped):
            result.append(goal if k == 1 else 0)
            continue
        result.append(_least_span(k, jump, goal, capped))
    result.reverse()
    return [max(0, value) for value in result]


def _least_span(k, jump, goal, capped):
    """Least ``s >= 0`` with ``s + (k - 1) * a * jump >= goal``, ``a = (s + 1) // jump``
    (``a >= 1`` needed, or with ``capped`` ``a = max(1, ...)``)."""
    if capped:
        small = max(0, goal - (k - 1) * jump)  # a = 0 treated as 1: s < jump - 1
        if small <= jump - 2:
            return small
    # With s + 1 = a jump + b (0 <= b < jump): s + (k - 1) a jump = k jump a + b - 1.
    a = max(1, -(-(goal + 1) // (k * jump)))
    if a > 1:
        b = max(0, goal + 1 - k * jump * (a - 1))
        if b < jump:
            return (a - 1) * jump + b - 1
    return a * jump - 1


def _capped_greedy(kernels, entry_jumps, need):
    """A whole stack reaching span ``need`` when the search ran out of effort (or depth).

    Each layer takes the smallest dilation from which the greedy rest (the largest
    step that keeps the stack whole, at least the entry jump) still reaches ``need``;
    equal stride-1 layers are then put in increasing order, which keeps them whole.
    """
    threshold = _greedy_thresholds(kernels, entry_jumps, need, capped=True)
    dilations, span = [], 0
    for index, (k, jump) in enumerate(zip(kernels, entry_jumps, strict=True)):
        if k == 1:
            dilations.append(1)
            continue
        largest = max(1, (span + 1) // jump)
        wanted = -(-(threshold[index + 1] - span) // ((k - 1) * jump))
        dilation = min(max(1, wanted), largest)
        dilations.append(dilation)
        span += (k - 1) * dilation * jump
    if len(set(kernels)) == 1 and set(entry_jumps) == {1}:
        dilations.sort()
    return tuple(dilations)


def _unevenness(dilations, kernels):
    """Largest over smallest growth ratio between consecutive dilations (1: geometric)."""
    spatial = [d for d, k in zip(dilations, kernels, strict=False) if k > 1]  # a prefix
    ratios = [b / a for a, b in zip(spatial, spatial[1:], strict=False)]
    return round(max(ratios) / min(ratios), 9) if ratios else 1.0


def suggest_schedules(target, kernel=3, *, max_layers=16, count=3):
    """Hole-free dilation schedules of k x k layers reaching ``target`` in fewest layers.

    Returns ``(layers_needed, [dilation tuples])``. Raises ValueError when
    ``max_layers`` layers cannot reach ``target`` without holes (at most ``k**L``), or
    for a ``target`` past :data:`MAX_FIELD`.

    >>> suggest_schedules(13, 3, count=1)
    (3, [(1, 2, 3)])
    """
    if kernel < 2:
        raise ValueError("kernel must be >= 2 to grow a receptive field")
    if target < 2:
        raise ValueError("target must be >= 2")
    if target > MAX_FIELD:
        raise ValueError(
            "target must be at most 10**100 (the largest receptive field dilcli takes)"
        )
    # Fewest layers: the least depth with kernel**depth >= target, from an estimate.
    depth = max(1, int((target.bit_length() - 1) / math.log2(kernel)) - 1)
    while depth > 1 and kernel ** (depth - 1) >= target:
        depth -= 1
    while kernel**depth < target:
        depth += 1
    if depth > max_layers:
        raise ValueError(
            f"{max_layers} layers of kernel {kernel} reach a field of at most "
            f"{kernel**max_layers} without holes; {target} needs {depth} layers"
        )
    while depth <= max_layers:
        schedules = hole_free_schedules([kernel] * depth, target, count=count)
        if schedules:
            # A field just past the target can pass MAX_FIELD when the target is near it.
            fields = [1 + (kernel - 1) * sum(dilations) for dilations in schedules]
            schedules = [s for s, f in zip(schedules, fields, strict=True) if f <= MAX_FIELD]
            if not schedules:
                raise ValueError(
                    "the hole-free schedules reaching the target pass 10**100, "
                    "the widest receptive field dilcli takes"
                )
            return depth, schedules
        depth += 1
    raise ValueError(f"no hole-free schedule of up to {max_layers} layers reaches {target}")


# --- effective receptive field --------------------------------------------------------


def effective_receptive_field(layers, kernels=None, *, ndim=2, absolute=False):
    """Impulse response of the linear stack: each input pixel's weight on the output.

    Parameters
    ----------
    layers : list of Layer or (kernel, dilation[, stride]) tuples
    kernels : list of array_like, optional
        One kernel per layer, ``(k,)`` or ``(k, k)`` to match ``ndim`` and the layer's
        size; uniform weights ``1 / k**ndim`` (the result then sums to 1) by default.
    ndim : {1, 2}
    absolute : bool
        Use ``|weights|``: the usual stand-in for a stack with ReLUs (Luo et al. 2016).

    Returns
    -------
    ndarray
        float64, shape ``(RF,) * ndim``; index ``i`` is position ``i`` of the receptive-
        field box, the same orientation as :func:`footprint_2d`. For correlation
        ``y[i] = sum_t w[t] x[i + t d - o]`` a single layer's response is its kernel,
        unflipped, with ``d - 1`` zeros between taps.

    Raises ValueError past :data:`MAX_DENSE_CELLS` cells (2048 x 2048 in 2-D) or
    :data:`MAX_EFFECTIVE_WORK` multiply-adds. 2-D kernels that are outer products of
    two 1-D kernels (the uniform ones, binomial, Gaussian, box ...) are followed as two
    1-D responses, so only the result is 2-D.
    """
    layers = as_layers(layers)
    ((_, response),) = iter_effective_responses(layers, kernels, ndim=ndim, absolute=absolute)
    return response


def iter_effective_responses(layers, kernels=None, *, ndim=2, absolute=False, wanted=None):
    """:func:`effective_receptive_field` of the stack's first layers, in one pass.

    Yields ``(index, response of layers[: index + 1])`` for each index in ``wanted``
    (default: the last layer only), in increasing order; a response is dense only when
    it is yielded. Same limits as :func:`effective_receptive_field`, for the whole
    stack, checked before this returns.
    """
    import numpy as np

    layers = as_layers(layers)
    if ndim not in (1, 2):
        raise ValueError(f"ndim must be 1 or 2, got {ndim!r}")
    wanted = {len(layers) - 1} if wanted is None else set(wanted)
    if kernels is not None:
        kernels = [np.asarray(k, dtype=np.float64) for k in kernels]
        if len(kernels) != len(layers):
            raise ValueError(f"{len(kernels)} kernels for {len(layers)} layers: give one per layer")
        for index, (layer, weights) in enumerate(zip(layers, kernels, strict=True)):
            if weights.shape != (layer.kernel,) * ndim:
                raise ValueError(
                    f"kernel {index + 1} has shape {weights.shape}; layer {index + 1} "
                    f"needs {(layer.kernel,) * ndim}"
                )
        if absolute:
            kernels = [np.abs(weights) for weights in kernels]
    fields = receptive_fields(layers)
    _check_dense(fields[-1], ndim, "effective receptive field")
    if kernels is None:
        factors = [[np.full(layer.kernel, 1.0 / layer.kernel)] * ndim for layer in layers]
    elif ndim == 1:
        factors = [[weights] for weights in kernels]
    else:
        factors = [_outer_factors(weights) for weights in kernels]
        if any(pair is None for pair in factors):
            factors = None  # one kernel is not separable: follow the 2-D response
    # Work: each layer adds k^ndim (or ndim * k when separable) shifted copies of the
    # response so far; wanted separable responses are one outer product each.
    if factors is None:
        work = sum(layer.kernel**2 * field**2 for layer, field in zip(layers, fields))
    else:
        work = sum(ndim * layer.kernel * field for layer, field in zip(layers, fields))
        work += len(wanted) * fields[-1] ** ndim
    if work > MAX_EFFECTIVE_WORK:
        raise ValueError(
            f"the effective receptive field of these {len(layers)} layers takes about "
            f"{work:.2g} multiply-adds (at most {MAX_EFFECTIVE_WORK:.2g})"
        )
    return _effective_steps(steps(layers), kernels, factors, ndim, wanted)


def _effective_steps(steps_, kernels, factors, ndim, wanted):
    import numpy as np

    if factors is None:
        response = np.ones((1, 1))
        for index, (step, weights) in enumerate(zip(steps_, kernels, strict=True)):
            response = _grow(response, weights, step, 2)
            if index in wanted:
                yield index, response
        return
    lines = [np.ones(1)] * ndim
    for index, (step, pair) in enumerate(zip(steps_, factors, strict=True)):
        lines = [_grow(line, weights, step, 1) for line, weights in zip(lines, pair)]
        if index in wanted:
            yield index, lines[0] if ndim == 1 else np.multiply.outer(*lines)


def _outer_factors(weights):
    """``(a, b)`` with ``outer(a, b) == weights`` (to 1e-12, zeros exact), else None."""
    import numpy as np

    row, column = np.unravel_index(np.argmax(np.abs(weights)), weights.shape)
    pivot = weights[row, column]
    if pivot == 0:
        return np.zeros(weights.shape[0]), np.zeros(weights.shape[1])
    a, b = weights[:, column], weights[row, :] / pivot
    product = np.multiply.outer(a, b)
    if np.array_equal(product == 0, weights == 0) and np.allclose(
        product, weights, rtol=1e-12, atol=0
    ):
        return a, b
    return None


def _grow(response, weights, step, ndim):
    """Response of one more layer: a shifted copy of ``response`` per tap, weighted."""
    import numpy as np

    k = weights.shape[0]
    size = response.shape[0] + (k - 1) * step
    grown = np.zeros((size,) * ndim)
    n = response.shape[0]
    for taps in np.ndindex(*weights.shape):
        if weights[taps] == 0:
            continue
        where = tuple(slice(t * step, t * step + n) for t in taps)
        grown[where] += weights[taps] * response
    return grown
