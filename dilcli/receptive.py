"""Receptive fields of stacks of dilated layers: sizes, coverage, gridding, suggestions.

A layer is (kernel size ``k``, dilation ``d``, stride ``s``); a stack is a list of
layers, input first. DESIGN.md's recurrence, with ``RF_0 = 1`` and ``J_0 = 1``::

    RF_l = RF_{l-1} + (k_l - 1) * d_l * J_{l-1},    J_l = J_{l-1} * s_l

One output of the stack sees the input positions ``sum_l t_l * r_l`` (``0 <= t_l < k_l``)
of its receptive-field box, where ``r_l = d_l * J_{l-1}`` is the layer's step measured
in input pixels: the footprint is a Minkowski sum of arithmetic progressions. It is kept
as a Python int used as a bit set (bit ``i`` = position ``i`` of the box), so it is exact
at any size and needs no numpy. Square k x k layers with the same dilation on both
axes have the Cartesian square of the 1-D footprint as their 2-D footprint, so 2-D
coverage is the square of the 1-D coverage.

Pure Python: numpy is imported only inside the functions that return arrays, so
printing a table stays fast.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

#: The paper's context module (Yu & Koltun 2015, Table 1): seven 3x3 layers, then 1x1.
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1, 1)
CONTEXT_KERNELS = (3, 3, 3, 3, 3, 3, 3, 1)
#: Output channels of the large context module, in multiples of C (Table 1).
CONTEXT_LARGE_CHANNELS = (2, 2, 4, 8, 16, 32, 32, 1)
#: Default C: the 21 classes of Pascal VOC, as in the paper.
DEFAULT_CONTEXT_CHANNELS = 21
SEED_DILATIONS = (1, 2, 4, 8)
WAVENET_DILATIONS = tuple(2**i for i in range(10))  # 1, 2, ..., 512; kernel 2
PRESETS = ("context-basic", "context-large", "seed", "wavenet")

# Search effort of the schedule suggestions: enough for exhaustive answers at usual
# sizes, bounded for deep stacks (the best schedules found so far are returned).
_SEARCH_NODE_LIMIT = 200_000
_SEARCH_MAX_DEPTH = 200  # deeper stacks get the greedy schedule (no recursion limit)


@dataclass(frozen=True)
class Layer:
    """One layer: ``kernel`` taps per axis, ``dilation`` between taps, ``stride``."""

    kernel: int
    dilation: int = 1
    stride: int = 1

    def __post_init__(self):
        for name in ("kernel", "dilation", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers become int

    @property
    def span(self):
        """Samples one dilated kernel covers: ``(k - 1) * d + 1``."""
        return (self.kernel - 1) * self.dilation + 1


def make_stack(dilations, kernels=3, strides=1):
    """Layers from dilations; ``kernels`` and ``strides`` are one int or one per layer.

    >>> make_stack([1, 2], kernels=3, strides=[2, 1])
    [Layer(kernel=3, dilation=1, stride=2), Layer(kernel=3, dilation=2, stride=1)]
    """
    dilations = list(dilations)
    if not dilations:
        raise ValueError("a stack needs at least one layer")
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
    return [
        Layer(k, d, s)
        for k, d, s in zip(columns["kernels"], dilations, columns["strides"], strict=True)
    ]


def as_layers(layers):
    """A list of :class:`Layer` from layers or ``(kernel, dilation[, stride])`` tuples."""
    result = [layer if isinstance(layer, Layer) else Layer(*layer) for layer in layers]
    if not result:
        raise ValueError("a stack needs at least one layer")
    return result


def context_module(*, large=False, channels=DEFAULT_CONTEXT_CHANNELS):
    """The paper's context module: ``(layers, [(c_in, c_out), ...])`` for ``C = channels``."""
    layers = make_stack(CONTEXT_DILATIONS, kernels=CONTEXT_KERNELS)
    outputs = [m * channels for m in CONTEXT_LARGE_CHANNELS] if large else [channels] * 8
    return layers, list(zip([channels, *outputs[:-1]], outputs, strict=True))


def wavenet_stack(repeat=1):
    """WaveNet's causal stack: kernel 2 at dilations 1, 2, ..., 512, ``repeat`` times."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
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
    as :func:`dilcli.conv.dilated_correlate` does; ``causal`` puts all of it before.
    """
    result, position = [], 0
    for layer, step in zip(as_layers(layers), steps(layers), strict=True):
        span = (layer.kernel - 1) * layer.dilation
        position += (span if causal else span // 2) * (step // layer.dilation)
        result.append(position)
    return result


# --- footprint and coverage ---------------------------------------------------------

#: Widest receptive field whose footprint is computed (2**24 bits is 2 MiB per layer).
MAX_FOOTPRINT = 1 << 24


def footprint_masks(layers):
    """The 1-D footprint after each layer, as int bit sets (bit i: position i of the box).

    Raises ValueError past :data:`MAX_FOOTPRINT` positions.
    """
    if receptive_fields(layers)[-1] > MAX_FOOTPRINT:
        raise ValueError(
            f"receptive field {receptive_fields(layers)[-1]} is too wide to map "
            f"(at most {MAX_FOOTPRINT} positions)"
        )
    masks, mask = [], 1
    for layer, step in zip(as_layers(layers), steps(layers), strict=True):
        grown = 0
        for tap in range(layer.kernel):
            grown |= mask << (tap * step)
        mask = grown
        masks.append(mask)
    return masks


def footprint_mask(layers):
    """The stack's 1-D footprint as an int bit set."""
    return footprint_masks(layers)[-1]


def footprint_1d(layers):
    """Which positions of the receptive-field box reach the output, left to right.

    >>> footprint_1d([(3, 2), (3, 2)])
    [True, False, True, False, True, False, True, False, True]
    """
    mask = footprint_mask(layers)
    return [bool(mask >> i & 1) for i in range(mask.bit_length())]


def footprint_2d(layers):
    """Boolean ``(RF, RF)`` numpy array: input pixels that reach the output."""
    import numpy as np

    row = np.array(footprint_1d(layers), dtype=bool)
    return np.logical_and.outer(row, row)


def coverage_fraction(layers, ndim=2):
    """Exact share of the receptive-field box that reaches the output, a Fraction."""
    from fractions import Fraction

    mask = footprint_mask(layers)
    return Fraction(mask.bit_count(), mask.bit_length()) ** ndim


def coverage(layers, ndim=2):
    """Share (0..1) of the receptive-field box that reaches the output.

    >>> coverage([(3, 2), (3, 2), (3, 2)]) == 49 / 169
    True
    """
    return float(coverage_fraction(layers, ndim))


def is_hole_free(layers):
    """True if every pixel of the receptive-field box reaches the output."""
    mask = footprint_mask(layers)
    return mask & (mask + 1) == 0


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

    The rule (DESIGN.md): free of holes when ``M_2 <= k`` and the rates share no common
    factor above 1. It is stated for stacks of one kernel size; for mixed sizes the
    verdict is 'n/a' (the coverage column is exact either way).
    """
    layers = as_layers(layers)
    spatial = [
        (layer, rate) for layer, rate in zip(layers, steps(layers), strict=True) if layer.kernel > 1
    ]
    if not spatial:
        return "pass", "no spatial layers"
    sizes = {layer.kernel for layer, _ in spatial}
    if len(sizes) > 1:
        return "n/a", "mixed kernel sizes"
    kernel = sizes.pop()
    factor = math.gcd(*(rate for _, rate in spatial))
    if factor > 1:
        return "fail", f"common factor {factor}"
    if len(spatial) > 1:
        m2 = hdc_values([layer for layer, _ in spatial])[1]
        if m2 > kernel:
            return "fail", f"M2 = {m2} > {kernel}"
    return "pass", ""


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
    :data:`MAX_FOOTPRINT`), ``params``,
    ``total_params``, ``hdc_m`` (``M_i`` of the whole stack; None for 1x1 layers),
    ``hdc`` ('pass' / 'fail' / 'n/a' for the layers up to this one) and ``hdc_note``.
    """
    layers = as_layers(layers)
    if ndim not in (1, 2):
        raise ValueError(f"ndim must be 1 or 2, got {ndim!r}")
    pairs = _channel_pairs(channels, len(layers))
    fields = receptive_fields(layers)
    mapped = sum(1 for field in fields if field <= MAX_FOOTPRINT)
    masks = (footprint_masks(layers[:mapped]) if mapped else []) + [None] * (len(layers) - mapped)
    m_values = hdc_values(layers)
    rows, previous, total = [], 1, 0
    for index, (layer, jump, field, mask, m_value) in enumerate(
        zip(layers, jumps(layers), fields, masks, m_values, strict=True)
    ):
        params = layer.kernel**ndim
        if pairs is not None:
            params *= pairs[index][0] * pairs[index][1]
        total += params
        covered = None if mask is None else mask.bit_count() ** ndim
        verdict, note = hdc_verdict(layers[: index + 1])
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
                "coverage": None if mask is None else covered / field**ndim,
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
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        return [(channels, channels)] * count
    pairs = [tuple(pair) for pair in channels]
    if len(pairs) != count or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"channels must be one int or {count} (c_in, c_out) pairs")
    if any(not isinstance(c, int) or c < 1 for pair in pairs for c in pair):
        raise ValueError("channel counts must be integers >= 1")
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
    pair_count = channels**2 if channels else 1

    def size(n):
        return f"{n}x{n}" if ndim == 2 else f"{n}"

    def row(design, stack):
        return {
            "design": design,
            "layers": len(stack),
            "params": pair_count * sum(layer.kernel**ndim for layer in stack if layer.stride == 1),
            "rf": receptive_fields(stack)[-1],
            "resolution": f"1/{jumps(stack)[-1]}",
            "coverage": (
                coverage(stack, ndim) if receptive_fields(stack)[-1] <= MAX_FOOTPRINT else None
            ),
        }

    rows = []
    if kernel > 1:
        count = max(1, math.ceil((target - 1) / (kernel - 1)))
        rows.append(row(f"{size(kernel)} convolutions", [Layer(kernel)] * count))
        pooled = [Layer(kernel)]
        while receptive_fields(pooled)[-1] < target:
            pooled += [Layer(2, 1, 2), Layer(kernel)]
        rows.append(row(f"{size(kernel)} conv + {size(2)} pool", pooled))
    rows.append(row(f"one {size(target)} kernel", [Layer(target)]))
    dilated = row("dilated stack", layers)
    dilated["params"] = pair_count * sum(layer.kernel**ndim for layer in layers)
    rows.append(dilated)
    return rows


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
    found = []
    nodes = 0

    def best_span_after(index, span):
        # Greedy: each layer takes the largest step that keeps the stack whole.
        for k, jump in zip(kernels[index:], entry_jumps[index:], strict=True):
            if k > 1:
                step = (span + 1) // jump * jump
                if step == 0:
                    return -1
                span += (k - 1) * step
        return span

    def least_span_after(index, span):
        return span + sum(
            (k - 1) * j for k, j in zip(kernels[index:], entry_jumps[index:], strict=True)
        )

    def walk(index, span, dilations):
        nonlocal nodes
        nodes += 1
        if index == len(kernels):
            if span >= need:
                key = (span, _unevenness(dilations, kernels), max(dilations), tuple(dilations))
                found.append(key)
                found.sort()
                del found[count:]
            return
        if nodes > effort or best_span_after(index, span) < need:
            return
        if len(found) >= count:
            # No completion can beat the worst kept: the field only grows, and the
            # unevenness of a prefix only grows as ratios are added.
            bound = (max(least_span_after(index, span), need), _unevenness(dilations, kernels))
            if bound > found[-1][:2]:
                return
        k, jump = kernels[index], entry_jumps[index]
        if k == 1:
            walk(index + 1, span, [*dilations, 1])
            return
        lowest = 1
        previous = index - 1
        while previous >= 0 and kernels[previous] == 1:
            previous -= 1
        if previous >= 0 and (kernels[previous], entry_jumps[previous]) == (k, jump):
            lowest = dilations[previous]
        for dilation in range(lowest, (span + 1) // jump + 1):
            walk(index + 1, span + (k - 1) * dilation * jump, [*dilations, dilation])

    if len(kernels) <= _SEARCH_MAX_DEPTH:
        walk(0, 0, [])
    if not found and best_span_after(0, 0) >= need:
        found.append((_capped_greedy(kernels, entry_jumps, need),))
    return [key[-1] for key in found]


def _capped_greedy(kernels, entry_jumps, need):
    """A whole stack reaching span ``need`` when the search ran out of effort (or depth).

    Each layer takes the largest step that keeps the stack whole, but no more than the
    remaining span asks for; equal stride-1 layers are then put in increasing order,
    which keeps them whole.
    """
    dilations, span = [], 0
    for index, (k, jump) in enumerate(zip(kernels, entry_jumps, strict=True)):
        if k == 1:
            dilations.append(1)
            continue
        largest = max(1, (span + 1) // jump)
        # Smallest dilation from which the greedy rest still reaches the target.
        low, high = 1, largest
        while low < high:
            middle = (low + high) // 2
            rest = span + (k - 1) * middle * jump
            for k2, jump2 in zip(kernels[index + 1 :], entry_jumps[index + 1 :], strict=True):
                if k2 > 1:
                    rest += (k2 - 1) * max(1, (rest + 1) // jump2) * jump2
            if rest >= need:
                high = middle
            else:
                low = middle + 1
        dilations.append(low)
        span += (k - 1) * low * jump
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
    ``max_layers`` layers cannot reach ``target`` without holes (at most ``k**L``).

    >>> suggest_schedules(13, 3, count=1)
    (3, [(1, 2, 3)])
    """
    if kernel < 2:
        raise ValueError("kernel must be >= 2 to grow a receptive field")
    if target < 2:
        raise ValueError("target must be >= 2")
    depth = 1
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
    """
    import numpy as np

    layers = as_layers(layers)
    if ndim not in (1, 2):
        raise ValueError(f"ndim must be 1 or 2, got {ndim!r}")
    if kernels is None:
        line = np.ones(1)
        for layer, step in zip(layers, steps(layers), strict=True):
            line = _grow(line, np.full(layer.kernel, 1.0 / layer.kernel), step, 1)
        return line if ndim == 1 else np.multiply.outer(line, line)
    kernels = [np.asarray(k, dtype=np.float64) for k in kernels]
    if len(kernels) != len(layers):
        raise ValueError(f"{len(kernels)} kernels for {len(layers)} layers: give one per layer")
    response = np.ones((1,) * ndim)
    for index, (layer, step, weights) in enumerate(
        zip(layers, steps(layers), kernels, strict=True)
    ):
        if weights.shape != (layer.kernel,) * ndim:
            raise ValueError(
                f"kernel {index + 1} has shape {weights.shape}; layer {index + 1} "
                f"needs {(layer.kernel,) * ndim}"
            )
        response = _grow(response, np.abs(weights) if absolute else weights, step, ndim)
    return response


def _grow(response, weights, step, ndim):
    """Response of one more layer: a shifted copy of ``response`` per tap, weighted."""
    import numpy as np

    k = weights.shape[0]
    size = response.shape[0] + (k - 1) * step
    grown = np.zeros((size,) * ndim)
    n = response.shape[0]
    for taps in np.ndindex(*weights.shape):
        where = tuple(slice(t * step, t * step + n) for t in taps)
        grown[where] += weights[taps] * response
    return grown
