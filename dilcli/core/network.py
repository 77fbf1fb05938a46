"""Receptive fields of whole networks: branches, strides, padding, upsampling, checked.

:mod:`dilcli.receptive` follows one stack of ``(kernel, dilation, stride)`` layers; this
module follows networks: per-axis kernels, strides, dilations and padding, pooling,
transposed convolution and upsampling (fractional jumps), and branches that merge
(residual add, sum, concatenation). It reports per axis the receptive-field size, the
jump, the centre of output 0 in input coordinates and the exact input box of any output,
and checks all of it numerically (:func:`verify`) by pushing impulses through the
network's linear skeleton.

The recurrences
---------------
Per axis, with ``r_0 = 1``, ``j_0 = 1``, ``c_0 = 0`` (input pixel ``x`` sits at ``x``), a
layer with ``k`` taps, dilation ``d``, stride ``s`` and padding ``p`` before the first
input (``p_after`` only changes the output length)::

    convolution, pooling:   r_out = r_in + (k - 1) * d * j_in
                            j_out = j_in * s
                            c_out = c_in + ((k - 1) * d / 2 - p) * j_in
    transposed convolution: j_out = j_in / s
                            r_out = r_in + (k - 1) * d * j_out
                            c_out = c_in + (p - (k - 1) * d / 2) * j_out

``c`` is the centre of output 0's field (``start``); output ``i`` is centred at
``c + i * j``. Convolution output ``o`` reads inputs ``o*s - p + t*d`` (``0 <= t < k``);
transposed output ``o`` reads the inputs ``i`` with ``i*s - p + t*d = o``: zero
insertion, then a stride-1 convolution with padding ``(k - 1) d - p``. Upsampling by
``f`` is the transposed convolution it equals away from the borders: nearest is
``k = f, s = f, p = 0`` with ones; bilinear (``align_corners=False``) is
``k = 2f - f % 2, s = f, p = f // 2`` with the triangle ``1 - |t - (k-1)/2| / f``.

Arithmetic is exact (ints and Fractions). With integer jumps everywhere the box of
output ``i`` is exactly ``[c + i j - (r - 1)/2, c + i j + (r - 1)/2]``. With fractional
jumps that window is a bound (``r`` may be a Fraction) and :func:`box` follows the exact
set of inputs back through the network. Branches that merge must agree on jump and
centre (else ValueError naming them); the merged field is the widest branch's.

The spec grammar (``--spec``)
------------------------------
::

    network := item ("," item)*            (empty items are skipped; whitespace ignored)
    item    := (layer | group | "(" network ")") ["*" N]      (repeat N times)
    group   := "[" network ("|" network)* "]" ["+"]
    layer   := kind [size] ("/" option)* ["@" name]
    kind    := conv | pool | maxpool | avgpool | convT | up | id
    size    := N | HxW                     (kernel; for up, the factor)
    option  := sN | sHxW                   stride (pool: default = kernel; else 1)
             | dN | dHxW                   dilation (default 1)
             | pN | pHxW | pB:A | pT:BxL:R  padding (before:after, per axis)
             | same | valid | causal       padding shorthands (below)
             | max | avg                   pooling (same geometry)
             | nearest | bilinear          upsampling (default nearest)

``same`` pads ``(k-1)d // 2`` before and the rest after (PyTorch's and dilcli's split,
extra on the right; TF's SAME differs for strided layers, give ``p`` then), ``valid``
pads 0, ``causal`` pads ``(k-1)d`` before and 0 after. Defaults: conv ``same``, pool and
convT ``valid``. A group joins parallel branches (all on the group's input):
``[a|b|c]`` concatenates, ``[a|b]+`` adds; an empty branch is the identity, and a group
with one branch and ``+`` is a residual block (``[conv3,conv3]+`` = ``x + f(x)``).
Example: ``conv3,conv3/d2,pool2/s2,conv3x1/d4,up2,[conv3/d6|conv3/d12|conv3/d18]+``.

JSON: ``{"name": ..., "layers": [...]}`` or a bare list. An entry is a spec string, a
layer object ``{"type": "conv", "kernel": 3 | [3, 1], "stride": ..., "dilation": ...,
"padding": "same" | 1 | [1, 2] | [[top, bottom], [left, right]], "mode": ..., "name":
...}`` (``"factor"`` for ``up``), a group ``{"merge": "add" | "concat", "branches":
[[...], ...]}`` or a repeat ``{"repeat": N, "layers": [...]}``.

Limits: at most :data:`MAX_NODES` layers after repeats, nesting :data:`MAX_NESTING`
deep, sizes up to :data:`MAX_VALUE`, fields and jumps up to ``10**100``; dense maps and
checks are bounded (:data:`MAX_MAP_CELLS`, :data:`MAX_VERIFY_CELLS`, ...).
"""

from __future__ import annotations

import inspect
import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from dilcli.core import receptive

#: Most layers in a network after repeats (as many as a stack may have).
MAX_NODES = receptive.MAX_LAYERS
#: Deepest nesting of groups and parentheses.
MAX_NESTING = 32
#: Largest kernel, stride, dilation, padding or factor (the int32 range).
MAX_VALUE = 2**31 - 1
#: Largest receptive field, jump (numerator or denominator) or centre: 10**100.
MAX_FIELD = receptive.MAX_FIELD
#: Largest network file.
MAX_FILE_BYTES = 1 << 20
#: Most cells of a dense map (2-D footprint, effective receptive field): 2048 x 2048.
MAX_MAP_CELLS = receptive.MAX_DENSE_CELLS
#: Most positions of a 1-D footprint followed densely (box of fractional networks).
MAX_LINE_CELLS = 1 << 22
#: Most multiply-adds spent on one dense map or footprint (a few seconds).
MAX_MAP_WORK = receptive.MAX_EFFECTIVE_WORK
#: Most cells (positions x impulses) of one array in :func:`verify` (32 MiB of float32).
MAX_VERIFY_CELLS = 1 << 23
#: Most multiply-adds :func:`verify` spends per axis.
MAX_VERIFY_WORK = 1 << 31

AXES = ("height", "width")
KINDS = ("conv", "pool", "convT", "up", "id")


# --- the description ------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One layer. Per-axis values are ``(height, width)``; ``padding`` is
    ``((top, bottom), (left, right))``. ``up`` keeps its factor in ``stride`` and the
    transposed convolution it equals in ``kernel`` and ``padding``."""

    kind: str
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: tuple = ((0, 0), (0, 0))
    mode: str = ""
    name: str = ""

    @property
    def transposed(self):
        return self.kind in ("convT", "up")

    def axis(self, a):
        """``(k, s, d, p_before, p_after)`` along axis ``a`` (0 height, 1 width)."""
        return (
            self.kernel[a],
            self.stride[a],
            self.dilation[a],
            self.padding[a][0],
            self.padding[a][1],
        )

    def taps(self, a):
        """The skeleton's 1-D weights along axis ``a``: ones, or the bilinear triangle."""
        k = self.kernel[a]
        if self.kind == "up" and self.mode == "bilinear":
            f = self.stride[a]
            return [1 - abs(Fraction(2 * t - (k - 1), 2)) / f for t in range(k)]
        return [1] * k

    def spec(self):
        """This layer in the spec grammar."""

        def pair(values):
            return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"

        if self.kind == "id":
            text = "id"
        elif self.kind == "up":
            text = f"up{pair(self.stride)}" + ("/bilinear" if self.mode == "bilinear" else "")
        else:
            text = ("pool" if self.kind == "pool" else self.kind) + pair(self.kernel)
            if self.kind == "pool" and self.mode == "avg":
                text += "/avg"
            if self.stride != (1, 1):
                text += f"/s{pair(self.stride)}"
            if self.dilation != (1, 1):
                text += f"/d{pair(self.dilation)}"
            (t, b), (left, right) = self.padding
            if t == b and left == right:
                text += f"/p{pair((t, left))}"
            else:
                text += f"/p{t}:{b}x{left}:{right}"
        return text + (f"@{self.name}" if self.name else "")


@dataclass(frozen=True)
class Merge:
    """Parallel branches on one input, joined by ``add`` or ``concat``; ``()`` is the
    identity branch."""

    kind: str
    branches: tuple
    name: str = ""

    def spec(self):
        inner = "|".join(",".join(node.spec() for node in branch) for branch in self.branches)
        if self.kind == "add" and len(self.branches) == 2 and self.branches[1] == ():
            inner = inner[:-1]  # [f]+ is f plus the identity
        return f"[{inner}]" + ("+" if self.kind == "add" else "")


@dataclass(frozen=True)
class AxisField:
    """Along one axis: ``size`` (input pixels), ``jump`` between outputs and ``centre``
    of output 0, all exact (int, or Fraction when not whole)."""

    size: object
    jump: object
    centre: object

    def window(self, i):
        """``(low, high)``: the field of output ``i``, as reals (exact Fractions)."""
        middle = Fraction(self.centre) + i * Fraction(self.jump)
        half = (Fraction(self.size) - 1) / 2
        return middle - half, middle + half

    @property
    def padding(self):
        """Effective padding as in google-research/receptive_field:
        ``centre = -padding + (size - 1) / 2``."""
        return _exact((Fraction(self.size) - 1) / 2 - Fraction(self.centre))


@dataclass(frozen=True)
class Network:
    """A network: ``nodes`` (Op and Merge), input first. Checked when built: ValueError
    for too many layers, misaligned branches or fields past the limits."""

    nodes: tuple
    name: str = ""
    provenance: str = ""

    def __post_init__(self):
        count = _count(self.nodes)
        if count == 0:
            raise ValueError("a network needs at least one layer")
        if count > MAX_NODES:
            raise ValueError(f"{count} layers: dilcli takes networks of at most {MAX_NODES}")
        rows = []
        start = tuple((Fraction(1), Fraction(1), Fraction(0)) for _ in AXES)
        final = _walk(self.nodes, start, "", rows)
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_final", final)

    def spec(self):
        return ",".join(node.spec() for node in self.nodes)

    @property
    def fractional(self):
        """True when some layer is transposed (or upsamples): jumps may be fractions."""
        return any(op.transposed for op in _ops(self.nodes))

    @property
    def has_branches(self):
        return any(isinstance(node, Merge) for node in _all_nodes(self.nodes))

    @property
    def field(self):
        """``(height, width)`` :class:`AxisField` of the network's output."""
        return tuple(AxisField(_exact(r), _exact(j), _exact(c)) for r, j, c in self._final)

    def rows(self):
        """One dict per layer and group, in order (groups after their branches): ``path``
        (``"4"``, ``"4.2.1"``: layer 1 of branch 2 of item 4), ``spec``, ``kind``, and
        per axis ``rf``, ``jump``, ``centre`` (tuples ``(height, width)``)."""
        return [dict(row) for row in self._rows]


def _exact(value):
    value = Fraction(value)
    return value.numerator if value.denominator == 1 else value


def _count(nodes):
    total = 0
    for node in nodes:
        total += 1 if isinstance(node, Op) else 1 + sum(_count(b) for b in node.branches)
    return total


def _all_nodes(nodes):
    for node in nodes:
        yield node
        if isinstance(node, Merge):
            for branch in node.branches:
                yield from _all_nodes(branch)


def _ops(nodes):
    return (node for node in _all_nodes(nodes) if isinstance(node, Op))


def _step(state, op, a):
    r, j, c = state
    k, s, d, pb, _ = op.axis(a)
    span = (k - 1) * d
    if op.transposed:
        j = j / s
        return r + span * j, j, c + (pb - Fraction(span, 2)) * j
    return r + span * j, j * s, c + (Fraction(span, 2) - pb) * j


def _walk(nodes, states, prefix, rows):
    for index, node in enumerate(nodes, 1):
        path = f"{prefix}{index}"
        if isinstance(node, Op):
            states = tuple(_step(state, node, a) for a, state in enumerate(states))
        else:
            ends = [
                _walk(branch, states, f"{path}.{b}.", rows)
                for b, branch in enumerate(node.branches, 1)
            ]
            merged = []
            for a, axis in enumerate(AXES):
                causal = _causal_merge(node, a)
                anchors = [_anchor(end[a], causal) for end in ends]
                if len(set(anchors)) > 1:
                    what = "right edge" if causal else "centre"
                    parts = [
                        f"branch {b} ({_short(branch)}) jump {_text(anchor[0])} {what} "
                        f"{_text(anchor[1])}"
                        for b, (branch, anchor) in enumerate(zip(node.branches, anchors), 1)
                    ]
                    raise ValueError(
                        f"the branches of item {path} ({node.kind}) do not line up along the "
                        f"{axis}: " + "; ".join(parts)
                    )
                low = min(c - (r - 1) / 2 for r, _, c in (end[a] for end in ends))
                high = max(c + (r - 1) / 2 for r, _, c in (end[a] for end in ends))
                merged.append((high - low + 1, ends[0][a][1], (low + high) / 2))
            states = tuple(merged)
        for r, j, c in states:
            if max(r, j, abs(c), j.denominator) > MAX_FIELD:
                raise ValueError(
                    f"the receptive field, jump or centre passes 10**100 at item {path}: "
                    "dilcli takes networks up to that size"
                )
        rows.append(
            {
                "path": path,
                "spec": node.spec(),
                "kind": node.kind,
                "rf": tuple(_exact(s[0]) for s in states),
                "jump": tuple(_exact(s[1]) for s in states),
                "centre": tuple(_exact(s[2]) for s in states),
            }
        )
    return states


def _causal(op, a):
    k, _, d, pb, pa = op.axis(a)
    return k == 1 or (not op.transposed and (pb, pa) == ((k - 1) * d, 0))


def _causal_merge(merge, a):
    """True when every layer in the branches is causal (or one tap) along axis ``a``,
    and some layer is wider: such branches line up on their fields' right edges (the
    present sample), not on their centres (a TCN block adds ``x`` to its causal
    convolutions)."""
    ops = [op for branch in merge.branches for op in _ops(branch)]
    return all(_causal(op, a) for op in ops) and any(op.kernel[a] > 1 for op in ops)


def _anchor(state, causal):
    r, j, c = state
    return j, (c + (r - 1) / 2) if causal else c


def _short(branch):
    text = ",".join(node.spec() for node in branch) or "identity"
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value):
    return str(_exact(value))


# --- parsing --------------------------------------------------------------------------

_LAYER = re.compile(r"(convT|conv|maxpool|avgpool|pool|up|id)(\d+(?:x\d+)?)?$")
_PAIR = re.compile(r"(\d+)(?:x(\d+))?$")
_PAD = re.compile(r"(\d+):(\d+)(?:x(\d+):(\d+))?$")


def _int(text, what):
    value = int(text)
    if value > MAX_VALUE:
        raise ValueError(f"{what} must be at most 2**31 - 1, got {text}")
    return value


def _pair(text, what, least=1):
    match = _PAIR.match(text)
    if not match:
        raise ValueError(f"{what} must be N or HxW, got {text!r}")
    h = _int(match.group(1), what)
    w = h if match.group(2) is None else _int(match.group(2), what)
    if min(h, w) < least:
        raise ValueError(f"{what} must be at least {least}, got {text!r}")
    return h, w


def make_op(
    kind,
    kernel=None,
    *,
    stride=None,
    dilation=1,
    padding=None,
    mode="",
    name="",
):
    """One layer from per-axis values (an int or ``(h, w)``); ``padding`` is an int,
    ``(h, w)``, ``((top, bottom), (left, right))`` or ``'same'``, ``'valid'``,
    ``'causal'``. For ``up``, ``kernel`` is the factor. Defaults as in the grammar."""
    if kind in ("maxpool", "avgpool"):
        kind, mode = "pool", kind[:3]
    if kind not in KINDS:
        raise ValueError(f"layer kind must be one of {', '.join(KINDS)}; got {kind!r}")

    def two(value, what, least=1):
        if isinstance(value, bool) or value is None:
            raise ValueError(f"{what} must be an integer or two, got {value!r}")
        if isinstance(value, int):
            values = (value, value)
        else:  # a float or a mapping is no pair: the check below names it
            values = tuple(value) if isinstance(value, (tuple, list)) else ()
        if len(values) != 2 or any(
            isinstance(v, bool) or not isinstance(v, int) or not least <= v <= MAX_VALUE
            for v in values
        ):
            raise ValueError(
                f"{what} must be one or two integers from {least} to 2**31 - 1, got {value!r}"
            )
        return values

    if kind == "id":
        return Op("id", name=name)
    if kind == "up":
        factor = two(1 if kernel is None else kernel, "the upsampling factor")
        mode = mode or "nearest"
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"upsampling mode must be nearest or bilinear, got {mode!r}")
        if mode == "nearest":
            k, pads = factor, ((0, 0), (0, 0))
        else:
            k = tuple(2 * f - f % 2 for f in factor)
            pads = tuple((f // 2, f // 2) for f in factor)
        return Op("up", k, factor, (1, 1), pads, mode, name)
    kernel = two(1 if kernel is None else kernel, "kernel")
    if kind == "pool":
        mode = mode or "max"
        if mode not in ("max", "avg"):
            raise ValueError(f"pooling must be max or avg, got {mode!r}")
    elif mode:
        raise ValueError(f"mode {mode!r} is for pool or up layers, not {kind}")
    stride = two(kernel if stride is None and kind == "pool" else stride or 1, "stride")
    dilation = two(dilation, "dilation")
    if padding is None:
        padding = "same" if kind == "conv" else "valid"
    if isinstance(padding, str):
        if padding not in ("same", "valid", "causal"):
            raise ValueError(f"padding must be same, valid, causal or numbers; got {padding!r}")
        if kind == "convT" and padding != "valid":
            raise ValueError("give a transposed convolution's padding as numbers (p)")
        spans = [(k - 1) * d for k, d in zip(kernel, dilation)]
        if padding == "same":
            padding = tuple((s // 2, s - s // 2) for s in spans)
        elif padding == "causal":
            padding = tuple((s, 0) for s in spans)
        else:
            padding = ((0, 0), (0, 0))
    elif isinstance(padding, int) and not isinstance(padding, bool):
        padding = ((padding, padding), (padding, padding))
    elif isinstance(padding, (tuple, list)):
        padding = tuple(padding)
        if len(padding) == 2 and all(isinstance(p, int) for p in padding):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
    else:  # 1.5, a mapping: named below, not a TypeError from tuple()
        raise ValueError(f"padding must be same, valid, causal or numbers; got {padding!r}")
    try:
        padding = tuple(two(tuple(p), "padding", least=0) for p in padding)
    except TypeError:
        raise ValueError(f"padding must be numbers per axis, got {padding!r}") from None
    if len(padding) != 2:
        raise ValueError(f"padding must be given for two axes, got {padding!r}")
    return Op(kind, kernel, stride, dilation, padding, mode, name)


def _parse_layer(token):
    text, _, name = token.partition("@")
    head, *options = text.split("/")
    match = _LAYER.match(head)
    if not match:
        raise ValueError(
            f"unknown layer {token!r}: a layer starts with conv, pool, maxpool, avgpool, "
            "convT, up or id, then its size (3 or 3x1)"
        )
    kind, size = match.groups()
    keywords = {"name": name}
    for option in options:
        if option in ("same", "valid", "causal"):
            keywords["padding"] = option
        elif option in ("max", "avg", "nearest", "bilinear"):
            keywords["mode"] = option
        elif option[:1] in ("s", "d") and option[1:2].isdigit():
            what = "stride" if option[0] == "s" else "dilation"
            keywords[what] = _pair(option[1:], f"{what} in {token!r}")
        elif option[:1] == "p" and option[1:2].isdigit():
            pad = _PAD.match(option[1:])
            if pad:
                t, b, left, right = pad.groups()
                left, right = (t, b) if left is None else (left, right)
                keywords["padding"] = tuple(
                    (_int(x, "padding"), _int(y, "padding")) for x, y in ((t, b), (left, right))
                )
            else:
                h, w = _pair(option[1:], f"padding in {token!r}", least=0)
                keywords["padding"] = ((h, h), (w, w))
        else:
            raise ValueError(
                f"unknown option {option!r} in {token!r}: use sN, dN, pN, pB:A, same, valid, "
                "causal, max, avg, nearest or bilinear"
            )
    if not size and kind != "id":
        raise ValueError(f"{token!r}: give the kernel size (or factor), as in {kind}3 or {kind}3x1")
    kernel = _pair(size, f"size in {token!r}") if size else None
    try:
        return make_op(kind, kernel, **keywords)
    except ValueError as error:
        raise ValueError(f"{token!r}: {error}") from None


class _SpecParser:
    def __init__(self, text):
        self.text = re.sub(r"\s+", "", text.replace("\n", ","))
        self.at = 0

    def fail(self, message):
        raise ValueError(f"{message} at character {self.at + 1} of the spec")

    def peek(self):
        return self.text[self.at : self.at + 1]

    def grow(self, total, more):
        # Every list is checked as it grows, so no text expands past MAX_NODES.
        total += more
        if total > MAX_NODES:
            self.fail(f"the network passes {MAX_NODES} layers")
        return total

    def sequence(self, depth, ends):
        nodes, total = [], 0
        while True:
            char = self.peek()
            if char == ",":
                self.at += 1
                continue
            if char == "" or char in ends:
                return nodes
            new = self.item(depth)
            total = self.grow(total, _count(new))
            nodes.extend(new)
            if self.peek() not in ("", ",", *ends):
                self.fail(f"expected ',' not {self.peek()!r}")

    def item(self, depth):
        if depth > MAX_NESTING:
            self.fail(f"groups nest more than {MAX_NESTING} deep")
        char = self.peek()
        if char == "[":
            self.at += 1
            branches = [tuple(self.sequence(depth + 1, "|]"))]
            total = self.grow(0, _count(branches[0]))
            while self.peek() == "|":
                self.at += 1
                branches.append(tuple(self.sequence(depth + 1, "|]")))
                total = self.grow(total, _count(branches[-1]))
            if self.peek() != "]":
                self.fail("a group opened with '[' needs ']'")
            self.at += 1
            kind = "concat"
            if self.peek() == "+":
                self.at += 1
                kind = "add"
                if len(branches) == 1:
                    branches.append(())  # residual: plus the identity
            nodes = [Merge(kind, tuple(branches))]
        elif char == "(":
            self.at += 1
            nodes = self.sequence(depth + 1, ")")
            if self.peek() != ")":
                self.fail("'(' needs ')'")
            self.at += 1
        else:
            match = re.compile(r"[^,|\[\]()*]+").match(self.text, self.at)
            if not match:
                self.fail(f"expected a layer, not {char!r}")
            nodes = [_parse_layer(match.group())]
            self.at = match.end()
        if self.peek() == "*":
            match = re.compile(r"\*(\d{1,7})(?!\d)").match(self.text, self.at)
            if not match or int(match.group(1)) < 1:
                self.fail("'*' needs a repeat count from 1 to 9999999")
            times = int(match.group(1))
            self.grow(0, _count(nodes) * times)
            self.at = match.end()
            nodes = nodes * times
        return nodes


def parse_spec(text, *, name="", provenance=""):
    """A :class:`Network` from the one-line grammar (module docstring).

    >>> parse_spec("conv3,conv3/d2,[conv3/d4|conv3/d8]+").field[0].size  # 1 + 2 + 4 + 16
    23
    """
    if not isinstance(text, str):
        raise ValueError(f"a spec must be text, got {type(text).__name__}")
    if len(text) > MAX_FILE_BYTES:
        raise ValueError(f"a spec may be at most {MAX_FILE_BYTES} characters")
    parser = _SpecParser(text)
    nodes = parser.sequence(0, "")
    if parser.at != len(parser.text):
        parser.fail(f"unexpected {parser.peek()!r}")
    return Network(tuple(nodes), name, provenance)


def parse_json(data, *, name="", provenance=""):
    """A :class:`Network` from JSON text or the object it decodes to (module docstring)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error}") from None
        except RecursionError:  # [[[[... thousands deep: Python's decoder gives up
            raise ValueError(
                f"the JSON nests too deep (groups nest at most {MAX_NESTING})"
            ) from None
    if isinstance(data, dict):
        name = name or str(data.get("name", ""))
        provenance = provenance or str(data.get("provenance", ""))
        if "layers" not in data:
            raise ValueError("a JSON network needs a 'layers' list")
        data = data["layers"]
    counter = [0]
    return Network(tuple(_json_nodes(data, 0, counter)), name, provenance)


def _json_nodes(items, depth, counter):
    if depth > MAX_NESTING:
        raise ValueError(f"groups nest more than {MAX_NESTING} deep")
    if not isinstance(items, list):
        raise ValueError(f"layers must be a list, got {type(items).__name__}")
    nodes = []
    for item in items:
        if isinstance(item, str):
            new = list(parse_spec(item).nodes) if item.strip() else []
        elif not isinstance(item, dict):
            raise ValueError(f"a layer must be an object or a spec string, got {item!r}")
        elif "repeat" in item:
            times = item["repeat"]
            if isinstance(times, bool) or not isinstance(times, int) or times < 1:
                raise ValueError(f"repeat must be an integer >= 1, got {times!r}")
            inner = _json_nodes(item.get("layers", []), depth + 1, counter)
            if _count(inner) * times > MAX_NODES:
                raise ValueError(f"the network passes {MAX_NODES} layers")
            new = inner * times
        elif "merge" in item or "branches" in item:
            kind = item.get("merge", "concat")
            if kind not in ("add", "concat", "sum"):
                raise ValueError(f"merge must be add or concat, got {kind!r}")
            branches = item.get("branches")
            if not isinstance(branches, list) or not branches:
                raise ValueError("a merge needs a non-empty 'branches' list")
            parts = tuple(tuple(_json_nodes(b, depth + 1, counter)) for b in branches)
            kind = "add" if kind == "sum" else kind
            if kind == "add" and len(parts) == 1:
                parts += ((),)
            new = [Merge(kind, parts, str(item.get("name", "")))]
        else:
            known = {"type", "kernel", "factor", "stride", "dilation", "padding", "mode", "name"}
            unknown = set(item) - known
            if unknown:
                raise ValueError(f"unknown layer keys {sorted(unknown)} in {item!r}")
            kernel = item.get("factor", item.get("kernel"))
            try:
                new = [
                    make_op(
                        item.get("type", "conv"),
                        None if kernel is None else _listed(kernel),
                        stride=_listed(item.get("stride")),
                        dilation=_listed(item.get("dilation", 1)),
                        padding=_listed(item.get("padding")),
                        mode=str(item.get("mode", "")),
                        name=str(item.get("name", "")),
                    )
                ]
            except ValueError as error:
                raise ValueError(f"{item!r}: {error}") from None
        counter[0] += _count(new)
        if counter[0] > MAX_NODES:
            raise ValueError(f"the network passes {MAX_NODES} layers")
        nodes.extend(new)
    return nodes


def _listed(value):
    if isinstance(value, list):
        return tuple(_listed(v) for v in value)
    return value


def parse_network_text(text, where="network"):
    """A :class:`Network` from the text of a network file: JSON when it starts with
    ``{`` or ``[``... and parses as JSON, else the spec grammar, where ``#`` starts a
    comment and a line break separates layers. Errors name ``where``."""
    stripped = text.lstrip()
    if stripped.startswith("{") or (stripped.startswith("[") and _is_json(stripped)):
        try:
            return parse_json(stripped)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    try:
        return parse_spec("\n".join(lines))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _is_json(text):
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    except RecursionError:
        return True  # JSON nested too deep: parse_json says so
    return True


# --- presets --------------------------------------------------------------------------


def _context(large):
    layers, _ = receptive.context_module(large=large)
    return ",".join(
        f"conv{layer.kernel}" + (f"/d{layer.dilation}" if layer.dilation > 1 else "")
        for layer in layers
    )


#: Presets whose dilations double per layer stop at 2**30 (the grammar's 2**31 - 1).
MAX_DOUBLINGS = 31


def _doublings(count, what):
    if not 1 <= count <= MAX_DOUBLINGS:
        raise ValueError(
            f"{what} must be from 1 to {MAX_DOUBLINGS} (dilations double up to "
            f"2**{MAX_DOUBLINGS - 1}), got {count}"
        )
    return count


def _wavenet(layers=10, stacks=1):
    _doublings(layers, "layers")
    one = ",".join(f"conv2/d{2**i}/causal" for i in range(layers))
    return f"({one})*{stacks}"


def _tcn(levels=8, kernel=3):
    _doublings(levels, "levels")
    return ",".join(
        f"[conv{kernel}/d{2**i}/causal,conv{kernel}/d{2**i}/causal]+" for i in range(levels)
    )


def _hdc(rates=(1, 2, 5), repeat=3):
    return f"({','.join(f'conv3/d{r}' for r in rates)})*{repeat}"


def _aspp_v2():
    return "[" + "|".join(f"conv3/d{r},conv1,conv1" for r in (6, 12, 18, 24)) + "]+"


def _slim_resnet_v1(units, output_stride=None, multi_grid=None):
    """TF-Slim resnet_v1 up to block4 (no pooling, no logits), for an even input size
    (224): conv2d_same's explicit padding at stride 2, TF SAME pooling pads 0 before and 1
    after. With ``output_stride`` the later blocks trade stride for rate as
    ``resnet_utils.stack_blocks_dense`` does."""
    parts = ["conv7/s2/p3@conv1", "pool3/s2/p0:1@pool1"]
    current, rate = 4, 1
    for block, count in enumerate(units):
        block_stride = 2 if block < 3 else 1
        for unit in range(count):
            stride = block_stride if unit == count - 1 else 1
            grid = multi_grid[unit] if multi_grid and block == 3 else 1
            if output_stride is not None and current == output_stride:
                s, r = 1, rate * grid
                rate *= stride
            else:
                s, r = stride, grid
                current *= stride
            middle = f"conv3/s{s}/d{r}/p{r}" if s > 1 else f"conv3/d{r}"
            main = f"conv1,{middle},conv1"
            if unit == 0:
                skip = f"conv1/s{s}" if s > 1 else "conv1"
            else:
                skip = f"pool1/s{s}" if s > 1 else ""
            parts.append(f"[{main}|{skip}]+")
    return ",".join(parts)


def _deeplab_v3(output_stride=16):
    if output_stride not in (8, 16):
        raise ValueError(f"DeepLab v3 output stride must be 8 or 16, got {output_stride}")
    rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    backbone = _slim_resnet_v1((3, 4, 23, 3), output_stride, (1, 2, 4))
    aspp = "[conv1|" + "|".join(f"conv3/d{r}" for r in rates) + "]"
    return f"{backbone},{aspp},conv1"


def _drn_c_26():
    def blocks(count, dilation, first_skip):
        d = f"/d{dilation}" if dilation > 1 else ""
        out = [f"[conv3{d},conv3{d}|{first_skip}]+"]
        out += [f"[conv3{d},conv3{d}]+"] * (count - 1)
        return out

    parts = ["conv7"]
    parts += blocks(1, 1, "")  # level 1: 16 -> 16 channels, identity skip
    parts += ["[conv3/s2,conv3|conv1/s2]+"]  # level 2
    for _ in range(2):  # levels 3 and 4: two blocks, the first strided
        parts += ["[conv3/s2,conv3|conv1/s2]+", "[conv3,conv3]+"]
    parts += blocks(2, 2, "conv1") + blocks(2, 4, "conv1")  # levels 5 and 6
    parts += ["conv3/d2,conv3/d2", "conv3,conv3"]  # levels 7 and 8: no residuals
    return ",".join(parts)


_ALEXNET_V2 = (
    "conv11/s4/valid@conv1,pool3/s2@pool1,conv5@conv2,pool3/s2@pool2,conv3@conv3,"
    "conv3@conv4,conv3@conv5,pool3/s2@pool5"
)
_VGG_16 = "conv3*2,pool2,conv3*2,pool2,conv3*3,pool2,conv3*3,pool2,conv3*3,pool2"

#: name -> (provenance, builder(**options) -> spec text)
PRESETS = {
    "context-basic": (
        "Yu & Koltun 2015, Table 1: basic context module, 3x3 at dilations 1,1,2,4,8,16,1 "
        "then 1x1 (RF 67)",
        lambda: _context(False),
    ),
    "context-large": (
        "Yu & Koltun 2015, Table 1: large context module (same geometry, wider channels; RF 67)",
        lambda: _context(True),
    ),
    "deeplab-v2-aspp-l": (
        "Chen et al. 2017, DeepLab v2 ASPP-L head only: 3x3 branches at rates 6,12,18,24, "
        "each then two 1x1 (fc7, fc8), summed; in pixels of the stride-8 feature map",
        _aspp_v2,
    ),
    "deeplab-v3": (
        "Chen et al. 2017, DeepLab v3: TF-Slim ResNet-101 v1 (7x7 root, not the 'beta' "
        "root), multi-grid (1,2,4) in block4, ASPP 1x1 + 3x3 at 6,12,18 (x2 at output "
        "stride 8) concatenated, then 1x1; image-pooling branch left out (it sees the "
        "whole image); option output_stride=16|8",
        _deeplab_v3,
    ),
    "wavenet": (
        "van den Oord et al. 2016, WaveNet: causal kernel-2 convolutions at dilations "
        "1..2**(layers-1), repeated stacks times (no initial causal conv); options "
        "layers=10, stacks=1",
        _wavenet,
    ),
    "tcn": (
        "Bai, Kolter & Koltun 2018, TCN: residual blocks of two causal kernel-k "
        "convolutions at dilation 2**i (the 1x1 skip conv changes no geometry); options "
        "levels=8, kernel=3",
        _tcn,
    ),
    "hdc": (
        "Wang et al. 2018, Hybrid Dilated Convolution: 3x3 at rates 1,2,5 repeated; "
        "options rates=(1,2,5), repeat=3",
        _hdc,
    ),
    "drn-c-26": (
        "Yu, Koltun & Funkhouser 2017, DRN-C-26 as in fyu/drn drn.py (BasicBlock, "
        "layers [1,1,2,2,2,2,1,1], levels 5-6 at dilation 2 and 4, levels 7-8 without "
        "residuals); output stride 8, up to the last feature map",
        _drn_c_26,
    ),
    "alexnet": (
        "TF-Slim alexnet_v2 up to pool5 (conv SAME, pool VALID); google-research/"
        "receptive_field lists RF 195, stride 32, padding 64",
        lambda: _ALEXNET_V2,
    ),
    "vgg16": (
        "TF-Slim vgg_16 up to pool5 (3x3 SAME, 2x2 pool VALID); google-research/"
        "receptive_field lists RF 212, stride 32, padding 90",
        lambda: _VGG_16,
    ),
    "resnet50": (
        "TF-Slim resnet_v1_50 up to block4 (stride in the 3x3 of each block's last unit), "
        "224-pixel input; google-research/receptive_field lists RF 483, stride 32, "
        "padding 239",
        lambda: _slim_resnet_v1((3, 4, 6, 3)),
    ),
}


#: Names for common option values: alias -> (preset, options).
PRESET_ALIASES = {
    "deeplab-v3-os16": ("deeplab-v3", {"output_stride": 16}),
    "deeplab-v3-os8": ("deeplab-v3", {"output_stride": 8}),
}


def preset(name, **options):
    """The named :data:`PRESETS` network; ``options`` as its provenance line says."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
    provenance, build = PRESETS[name]
    parameters = inspect.signature(build).parameters
    options = dict(options)
    for key, value in options.items():
        if key not in parameters:
            takes = f"takes {', '.join(parameters)}" if parameters else "takes no options"
            raise ValueError(f"preset {name} {takes}; got {key!r}")
        if isinstance(parameters[key].default, tuple):
            options[key] = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        elif isinstance(value, (tuple, list)):
            raise ValueError(
                f"preset {name}: {key} is one whole number, got {'-'.join(map(str, value))}"
            )
    try:
        return parse_spec(build(**options), name=name, provenance=provenance)
    except ValueError as error:  # the spec is ours, not the user's: no character numbers
        reason = re.sub(r" at character \d+ of the spec$", "", str(error))
        raise ValueError(f"preset {name}: {reason}") from None


def from_stack(layers, *, causal=False, name="", provenance=""):
    """The :class:`Network` of a :mod:`receptive` stack: square conv layers padded
    ``same`` (or ``causal``), so ``rf-table -d ...`` can answer network questions.

    >>> from_stack([(3, 1), (3, 2, 2)]).spec()
    'conv3/p1,conv3/s2/d2/p2'
    """
    padding = "causal" if causal else "same"
    spec = ",".join(
        f"conv{layer.kernel}/s{layer.stride}/d{layer.dilation}/{padding}"
        for layer in receptive.as_layers(layers)
    )
    return parse_spec(spec, name=name, provenance=provenance)


def parse_preset(text):
    """``(name, options)`` from ``NAME`` or ``NAME:key=value,key=value`` (values: an
    integer, or integers joined by ``-`` for a tuple), as ``--preset`` takes them.

    >>> parse_preset("wavenet:layers=10,stacks=3"), parse_preset("hdc:rates=1-2-5")
    (('wavenet', {'layers': 10, 'stacks': 3}), ('hdc', {'rates': (1, 2, 5)}))
    """
    name, _, rest = str(text).partition(":")
    name = name.strip()
    if name in PRESET_ALIASES:
        name, options = PRESET_ALIASES[name]
        options = dict(options)
    else:
        options = {}
    if name not in PRESETS:
        raise ValueError(
            f"preset must be one of {', '.join([*PRESETS, *PRESET_ALIASES])}; got {text!r}"
        )
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not re.fullmatch(r"\d+(-\d+)*", value.strip()):
            raise ValueError(
                f"preset options are key=value with whole numbers (rates=1-2-5), got {item!r}"
            )
        numbers = tuple(_int(v, key) for v in value.strip().split("-"))
        options[key.strip()] = numbers[0] if len(numbers) == 1 else numbers
    return name, options


# --- boxes, sizes and units -----------------------------------------------------------


def box(network, i, j):
    """Inclusive input box ``(top, bottom, left, right)`` of output ``(i, j)``, in input
    pixels (may lie outside the image); None when that output reads no input at all.

    Exact: the field window for integer jumps; the exact set followed back through the
    network otherwise (ValueError past :data:`MAX_LINE_CELLS` positions).
    """
    result = []
    for a, o in enumerate((i, j)):
        lo_hi = _axis_box(network, a, o)
        if lo_hi is None:
            return None
        result.extend(lo_hi)
    return tuple(result)


def _axis_box(network, a, o):
    if not network.fractional:
        low, high = network.field[a].window(o)
        return int(low), int(high)
    found = _support_1d(network, a, o)
    if found is None:
        return None
    offset, support = found
    where = support.nonzero()[0]
    return offset + int(where[0]), offset + int(where[-1])


def larger_than_input(network, input_size):
    """``(height, width)``: True where the receptive field is wider than the input."""
    sizes = _two(input_size, "input size")
    return tuple(Fraction(f.size) > n for f, n in zip(network.field, sizes))


def _two(value, what):
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ValueError(f"{what} must be one or two integers, got {value!r}")
    if min(values) < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return values


_LENGTHS = ("nm", "um", "µm", "mm", "cm", "m")
_RATES = {"hz": 1, "khz": 1000, "mhz": 10**6}
_QUANTITY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d{1,3}))?\s*([A-Za-zµμ]*)\s*$")


def parse_quantity(text, units, what):
    """``(value, unit)`` from text like ``0.5um`` with a unit from ``units``."""
    match = _QUANTITY.match(str(text))
    if not match or match.group(3).lower().replace("μ", "µ") not in {u.lower() for u in units}:
        raise ValueError(
            f"{what} must be a positive number with a unit ({', '.join(units)}), got {text!r}"
        )
    value = Fraction(match.group(1)) * Fraction(10) ** int(match.group(2) or 0)
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {text!r}")
    if not Fraction(1, 10**30) <= value <= 10**30:  # physical figures stay floats
        raise ValueError(f"{what} must be from 1e-30 to 1e30, got {text!r}")
    unit = match.group(3)
    return value, next(u for u in units if u.lower() == unit.lower().replace("μ", "µ"))


def physical(pixels, *, pixel_size=None, rate=None):
    """``(value, unit)``: ``pixels`` as a length (``pixel_size`` like ``0.5um``, the unit
    kept) or a duration in ms (``rate`` like ``16kHz`` or ``250Hz``); exact Fractions.

    >>> physical(483, pixel_size="0.5um")
    (Fraction(483, 2), 'um')
    >>> physical(1024, rate="16kHz")
    (Fraction(64, 1), 'ms')
    """
    if (pixel_size is None) == (rate is None):
        raise ValueError("give a pixel size or a sample rate (one of them)")
    if pixel_size is not None:
        size, unit = parse_quantity(pixel_size, list(_LENGTHS), "pixel size")
        return Fraction(pixels) * size, unit
    hertz, unit = parse_quantity(rate, ["Hz", "kHz", "MHz"], "sample rate")
    return Fraction(pixels) * 1000 / (hertz * _RATES[unit.lower()]), "ms"


def describe(network, *, at=(0, 0), input_size=None, pixel_size=None, rate=None):
    """Everything ``rf-table --network`` prints, as one dict: per axis ``rf``, ``jump``,
    ``centre``, ``padding`` (effective), ``box`` of output ``at``, ``larger`` than the
    input (when ``input_size`` is given) and ``physical`` sizes (with a pixel size or
    rate); ``rows`` per layer."""
    fields = network.field
    result = {
        "name": network.name,
        "provenance": network.provenance,
        "spec": network.spec(),
        "rf": tuple(f.size for f in fields),
        "jump": tuple(f.jump for f in fields),
        "centre": tuple(f.centre for f in fields),
        "padding": tuple(f.padding for f in fields),
        "at": tuple(at),
        "box": box(network, *at),
        "rows": network.rows(),
    }
    if input_size is not None:
        result["larger"] = larger_than_input(network, input_size)
    if pixel_size is not None or rate is not None:
        result["physical"] = tuple(
            physical(f.size, pixel_size=pixel_size, rate=rate) for f in fields
        )
    return result


# --- the linear skeleton, backwards (footprints, effective fields) -------------------


def _plan(op, a, offset, n):
    """Backward through ``op`` along axis ``a`` for a layer-output array of ``n``
    positions starting at ``offset``: ``(new offset, new size, taps)``, where ``taps``
    yields per tap ``(dst, src)`` slices into the layer-input and layer-output arrays
    (None for a tap reaching none of them)."""
    k, s, d, pb, _ = op.axis(a)
    if not op.transposed:  # input i = o*s - pb + t*d: scatter
        size = (n - 1) * s + (k - 1) * d + 1
        taps = ((slice(t * d, t * d + (n - 1) * s + 1, s), slice(0, n)) for t in range(k))
        return offset * s - pb, size, taps
    low = -(-(offset + pb - (k - 1) * d) // s)  # inputs i with i*s - pb + t*d in the array
    high = (offset + n - 1 + pb) // s
    size = high - low + 1

    def taps():
        for t in range(k):
            c = low * s - pb + t * d - offset  # source index of a = 0
            first, last = max(0, -(c // s)), min(size - 1, (n - 1 - c) // s)
            if first > last:
                yield None
            else:
                yield slice(first, last + 1), slice(c + first * s, c + last * s + 1, s)

    return low, size, taps()


class _Budget:
    def __init__(self, cells, work, what):
        self.cells, self.work, self.what, self.spent = cells, work, what, 0

    def need(self, cells, work):
        self.spent += work
        if cells > self.cells:
            raise ValueError(
                f"the {self.what} needs an array of {cells:,} cells (at most {self.cells:,})"
            )
        if self.spent > self.work:
            raise ValueError(
                f"the {self.what} takes over {self.work:,} multiply-adds (at most that many)"
            )


def _back(nodes, array, offsets, axes, weights, support, budget):
    """Follow ``array`` (over the output of ``nodes``, first cell at ``offsets``) back to
    the input of ``nodes``. ``axes``: which network axis each array axis is; ``weights(op)``
    gives a per-axis list of 1-D weights (separable) or one 2-D array."""
    import numpy as np

    for node in reversed(nodes):
        if array is None:
            return None
        if isinstance(node, Merge):
            parts = []
            for branch in node.branches:
                got = _back(branch, array, offsets, axes, weights, support, budget)
                if got is not None:
                    parts.append(got)
            if not parts:
                return None
            low = [min(p[1][i] for p in parts) for i in range(len(axes))]
            high = [max(p[1][i] + p[0].shape[i] for p in parts) for i in range(len(axes))]
            shape = tuple(h - lo for h, lo in zip(high, low))
            budget.need(math.prod(shape), math.prod(shape) * len(parts))
            total = np.zeros(shape)
            for part, where in parts:
                index = tuple(slice(w - lo, w - lo + m) for w, lo, m in zip(where, low, part.shape))
                total[index] += part
            array, offsets = total, tuple(low)
        elif node.kind == "id":
            continue
        else:
            op = node.op if isinstance(node, _Numbered) else node
            if max(op.kernel) > budget.cells:
                raise ValueError(
                    f"a kernel of {max(op.kernel):,} taps is too wide for the {budget.what} "
                    f"(at most {budget.cells:,})"
                )
            budget.need(0, array.size * sum(op.kernel))
            taps = weights(node)
            node = op
            if isinstance(taps, list):  # one 1-D weight list per network axis: separable
                for i, a in enumerate(axes):
                    array, offset = _back_axis(array, offsets[i], i, node, a, taps[a], budget)
                    if array is None:
                        return None
                    offsets = offsets[:i] + (offset,) + offsets[i + 1 :]
            else:
                array, offsets = _back_2d(array, offsets, node, taps, budget)
                if array is None:
                    return None
        if support:
            array = (array > 0).astype(np.float64)
    return array, offsets


def _back_axis(array, offset, i, op, a, taps, budget):
    import numpy as np

    new_offset, size, plan = _plan(op, a, offset, array.shape[i])
    if size < 1:
        return None, None
    shape = array.shape[:i] + (size,) + array.shape[i + 1 :]
    budget.need(math.prod(shape), array.size * op.kernel[a])
    out = np.zeros(shape)
    for weight, pair in zip(taps, plan):
        if pair is None or weight == 0:
            continue
        dst, src = pair
        lead = (slice(None),) * i
        out[lead + (dst,)] += float(weight) * array[lead + (src,)]
    if not out.any():
        return None, None
    return out, new_offset


def _back_2d(array, offsets, op, weights, budget):
    import numpy as np

    plans = [_plan(op, a, offsets[a], array.shape[a]) for a in (0, 1)]
    plans = [(low, size, list(taps)) for low, size, taps in plans]
    if min(plan[1] for plan in plans) < 1:
        return None, None
    shape = (plans[0][1], plans[1][1])
    budget.need(math.prod(shape), array.size * weights.size)
    out = np.zeros(shape)
    for th, row in enumerate(plans[0][2]):
        for tw, column in enumerate(plans[1][2]):
            if row is None or column is None or weights[th, tw] == 0:
                continue
            out[row[0], column[0]] += weights[th, tw] * array[row[1], column[1]]
    if not out.any():
        return None, None
    return out, (plans[0][0], plans[1][0])


def _ones(op):
    return [op.taps(0), op.taps(1)]


def _support_1d(network, a, o):
    """``(offset, 0/1 array)``: the input positions output ``o`` reads along axis ``a``."""
    import numpy as np

    budget = _Budget(MAX_LINE_CELLS, MAX_MAP_WORK, "1-D footprint")
    got = _back(network.nodes, np.ones(1), (o,), (a,), _ones, True, budget)
    if got is None:
        return None
    array, (offset,) = got
    return offset, array


def footprint_2d(network, at=(0, 0)):
    """``(top, left, bool array)``: the input pixels output ``at`` reads (every tap taken
    as non-zero). ValueError past :data:`MAX_MAP_CELLS` cells or :data:`MAX_MAP_WORK`."""
    import numpy as np

    _check_map(network)
    budget = _Budget(MAX_MAP_CELLS, MAX_MAP_WORK, "2-D footprint")
    got = _back(network.nodes, np.ones((1, 1)), tuple(at), (0, 1), _ones, True, budget)
    if got is None:
        return None
    array, (top, left) = got
    return top, left, array > 0


def _check_map(network):
    cells = math.prod(math.ceil(Fraction(f.size)) for f in network.field)
    if cells > MAX_MAP_CELLS:
        raise ValueError(
            f"the receptive field has {cells:,} pixels: dense maps take at most "
            f"{MAX_MAP_CELLS:,} (2048 x 2048)"
        )


def _chain_layers(network, a):
    """The network as a :mod:`receptive` stack along axis ``a``, or None (branches,
    transposed layers)."""
    if network.fractional or network.has_branches:
        return None
    return [
        receptive.Layer(op.kernel[a], op.dilation[a], op.stride[a])
        for op in network.nodes
        if op.kind != "id"
    ] or [receptive.Layer(1)]


def _axis_coverage(network, a, o):
    layers = _chain_layers(network, a)
    if layers is not None:
        return receptive.coverage_fraction(layers, ndim=1)
    found = _support_1d(network, a, o)
    if found is None:
        return Fraction(0)
    where = found[1].nonzero()[0]
    return Fraction(len(where), int(where[-1] - where[0]) + 1)


def coverage(network, at=(0, 0)):
    """Exact coverage of output ``at``'s box: ``{"height", "width": Fraction, "area":
    Fraction or None}`` (reached / box). Plain stacks reuse
    :func:`dilcli.receptive.coverage_fraction`; networks with branches or transposed
    layers follow the footprint densely. ``area`` is the product of the axes for plain
    stacks (their footprint is a product), else counted on the 2-D footprint (None past
    :data:`MAX_MAP_CELLS`)."""
    result = {axis: _axis_coverage(network, a, at[a]) for a, axis in enumerate(AXES)}
    if not network.has_branches:
        result["area"] = result["height"] * result["width"]
    else:
        try:
            got = footprint_2d(network, at)
        except ValueError:
            got = None
        if got is None:
            result["area"] = None
        else:
            mask = got[2]
            rows, cols = mask.any(axis=1).nonzero()[0], mask.any(axis=0).nonzero()[0]
            area = (int(rows[-1] - rows[0]) + 1) * (int(cols[-1] - cols[0]) + 1)
            result["area"] = Fraction(int(mask.sum()), area)
    return result


def hdc_check(network, at=(0, 0)):
    """The HDC rule and the exact coverage side by side, never contradicting.

    Returns a dict: ``applies`` (the rule is a sufficient condition here: a plain stack,
    square kernels of one odd size, first spatial step 1; docs/design.md, section 7),
    ``reason``, ``says`` (``(verdict, note)`` per axis from
    :func:`dilcli.receptive.hdc_verdict`, None without a plain stack), ``reading`` (per
    axis, :func:`dilcli.receptive.hdc_reading`), ``coverage`` (of output ``at``, as
    :func:`coverage`), ``hole_free`` (the verdict: coverage 1 on both axes) and
    ``conclusion``.
    """
    cov = coverage(network, at)
    hole_free = cov["height"] == 1 and cov["width"] == 1
    stacks = [_chain_layers(network, a) for a in (0, 1)]
    says = None if stacks[0] is None else tuple(receptive.hdc_verdict(s) for s in stacks)
    reason = ""
    if stacks[0] is None:
        reason = "branches or transposed layers"
    else:
        reasons = {receptive.hdc_not_applicable(stack) for stack in stacks}
        reasons.discard("")
        if any(op.kernel[0] != op.kernel[1] for op in network.nodes if op.kind != "id"):
            reasons.add("kernels not square")
        reason = ", ".join(sorted(reasons))
    applies = not reason
    readings = None if stacks[0] is None else [receptive.hdc_reading(s) for s in stacks]
    conclusion = "no holes" if hole_free else "holes: coverage below 100%"
    if readings is not None and all(r[0] == "fail" for r in readings):
        conclusion += f"; HDC fails ({readings[0][1]}): a common factor leaves holes"
    elif applies and all(r[0] == "pass" for r in readings):
        conclusion += "; HDC holds and guarantees it here"
        if not hole_free:  # cannot happen (docs/design.md, section 7); report, never hide
            conclusion = "holes, though HDC holds: the coverage decides"
    elif applies:
        conclusion += "; HDC not met, which says nothing about holes: a sufficient condition only"
    else:
        conclusion += f"; HDC does not decide here ({reason})"
    return {
        "applies": applies,
        "reason": reason,
        "says": says,
        "reading": readings,
        "coverage": cov,
        "hole_free": hole_free,
        "conclusion": conclusion,
    }


# --- verification ---------------------------------------------------------------------


@dataclass
class Check:
    axis: str
    what: str
    expected: object
    measured: object

    @property
    def ok(self):
        return self.expected == self.measured


@dataclass
class VerifyReport:
    """What :func:`verify` checked: a list of :class:`Check`."""

    checks: list

    @property
    def ok(self):
        return all(check.ok for check in self.checks)

    def lines(self):
        return [
            f"{'ok ' if c.ok else 'BAD'} {c.axis:<6} {c.what:<28} expected {_show(c.expected)}, "
            f"measured {_show(c.measured)}"
            for c in self.checks
        ]


def _show(value):
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return str(_exact(value)) if isinstance(value, Fraction) else str(value)


def verify(network, *, at=(0, 0)):
    """Push impulses forward through the linear skeleton and compare with the maths.

    Per axis, one 1-D pass (a network of full rectangular kernels is separable per axis;
    branches merge as sums): an impulse at every input position of the boxes of the
    checked outputs (``at`` and the next, or a whole period when jumps are fractions) plus,
    per output, a probe that is one everywhere outside its box. Layers run as
    :func:`dilcli.conv.dilated_correlate` on zero-padded input (transposed layers after
    zero insertion), every tap one, thresholded to 0/1 after each layer, so the support
    is exact. Checks: the box of each output (exact), nothing outside it reaching the
    output, size, centre and jump (integer jumps) or the window bound and the period's
    shift (fractional), and the count of reached positions against :func:`coverage`.

    Raises ValueError when an axis needs more than :data:`MAX_VERIFY_CELLS` cells or
    :data:`MAX_VERIFY_WORK` multiply-adds.
    """
    checks = []
    for a in (0, 1):
        checks.extend(_verify_axis(network, a, at[a]))
    return VerifyReport(checks)


def _verify_axis(network, a, o):
    import numpy as np

    axis = AXES[a]
    fld = network.field[a]
    jump = Fraction(fld.jump)
    # Outputs o and o + period read translated inputs: every layer's shift is whole.
    period = 1
    for op, jin in _ops_with_jumps(network.nodes, Fraction(1), a):
        s = op.axis(a)[1]
        for inner in (jin, jin / s if op.transposed else jin * s):
            period = math.lcm(period, (jump / inner).denominator)
    outs = sorted({o, o + 1, *range(o, o + min(period, 8) + 1), o + period})
    boxes = {out: _axis_box(network, a, out) for out in outs}
    reached = [b for b in boxes.values() if b is not None]
    # No output reading any input is possible (a transposed layer's zeros): the probes
    # then check that nothing reaches them.
    lo = min((b[0] for b in reached), default=0)
    hi = max((b[1] for b in reached), default=0)
    unit, budget = 1, Fraction(0)
    for op, jin in _ops_with_jumps(network.nodes, Fraction(1), a):
        k, s, d, pb, pa = op.axis(a)
        unit = math.lcm(unit, jin.numerator, (jin / s if op.transposed else jin * s).numerator)
        budget += ((k - 1) * d + pb + pa + s) * jin
    margin = unit * (math.ceil((budget + max(0, -lo)) / unit) + 1)
    n = margin + hi + 1 + margin
    width = hi - lo + 1
    batch = width + len(outs)
    lengths = _lengths(network.nodes, n, a)
    cells = max(lengths[0]) * batch
    work = lengths[1] * batch
    if cells > MAX_VERIFY_CELLS or work > MAX_VERIFY_WORK:
        raise ValueError(
            f"checking the {axis} takes {cells:,} cells and {work:,} multiply-adds (at most "
            f"{MAX_VERIFY_CELLS:,} cells and {MAX_VERIFY_WORK:,} multiply-adds)"
        )
    x = np.zeros((n, batch), dtype=np.float32)
    x[np.arange(width) + lo + margin, np.arange(width)] = 1
    for column, out in enumerate(outs, width):
        x[:, column] = 1
        if boxes[out] is not None:
            x[boxes[out][0] + margin : boxes[out][1] + margin + 1, column] = 0
    y = _forward(network.nodes, x, a)
    shift = Fraction(margin) / jump
    checks = []
    measured = {}
    for column, out in enumerate(outs, width):
        row = int(out + shift)
        hits = np.nonzero(y[row, :width])[0] if row < y.shape[0] else np.array([], int)
        got = (int(hits[0]) + lo, int(hits[-1]) + lo) if hits.size else None
        measured[out] = (got, hits.size)
        checks.append(Check(axis, f"box of output {out}", boxes[out], got))
        outside = bool(y[row, column]) if row < y.shape[0] else None
        checks.append(Check(axis, f"nothing outside box {out}", False, outside))
    got0 = measured[o][0]
    if got0 is not None:
        if not network.fractional:  # the window is the exact box
            checks.append(Check(axis, "size", Fraction(fld.size), Fraction(got0[1] - got0[0] + 1)))
            checks.append(
                Check(
                    axis,
                    f"centre of output {o}",
                    fld.window(o)[0] + (Fraction(fld.size) - 1) / 2,
                    Fraction(got0[0] + got0[1], 2),
                )
            )
            nxt = measured[o + 1][0]
            if nxt is not None:
                checks.append(
                    Check(axis, "jump", jump, Fraction(nxt[0] + nxt[1] - got0[0] - got0[1], 2))
                )
        else:
            for out in outs:
                got = measured[out][0]
                if got is None:
                    continue
                low, high = fld.window(out)
                checks.append(
                    Check(axis, f"box {out} within window", True, low <= got[0] and got[1] <= high)
                )
            last = measured[o + period][0]
            if last is not None:
                checks.append(
                    Check(
                        axis,
                        f"shift over {period} outputs",
                        (jump * period,) * 2,
                        (Fraction(last[0] - got0[0]), Fraction(last[1] - got0[1])),
                    )
                )
        cov = _axis_coverage(network, a, o)
        count = measured[o][1]
        checks.append(
            Check(axis, f"coverage of output {o}", cov, Fraction(count, got0[1] - got0[0] + 1))
        )
    return checks


def _ops_with_jumps(nodes, jump, a):
    """``(op, jump at its input)`` for every layer, branches included."""
    for node in nodes:
        if isinstance(node, Op):
            yield node, jump
            _, s, _, _, _ = node.axis(a)
            jump = jump / s if node.transposed else jump * s
        else:
            ends = []
            for branch in node.branches:
                end = jump
                for op, jin in _ops_with_jumps(branch, jump, a):
                    yield op, jin
                    s = op.axis(a)[1]
                    end = jin / s if op.transposed else jin * s
                ends.append(end)
            jump = ends[0]


def _lengths(nodes, n, a):
    """``([lengths], work)``: array lengths of the forward pass, multiply-adds per column."""
    sizes, work = [n], 0
    for node in nodes:
        if isinstance(node, Op):
            k, s, d, pb, pa = node.axis(a)
            if node.transposed:
                grown = (n - 1) * s + 1
                n2 = grown - pb - pa + (k - 1) * d
                work += k * (n2 + (k - 1) * d) + grown
            else:
                n2 = (n + pb + pa - (k - 1) * d - 1) // s + 1 if n > 0 else 0
                work += k * (n + pb + pa)
            n = max(0, n2)
            sizes.append(n)
        else:
            ends = []
            for branch in node.branches:
                got, more = _lengths(branch, n, a)
                sizes.extend(got)
                work += more
                ends.append(got[-1])
            n = min(ends)
            sizes.append(n)
    return sizes, work


def _forward(nodes, x, a):
    import numpy as np

    from dilcli.core.conv import dilated_correlate

    for node in nodes:
        if isinstance(node, Merge):
            outs = [_forward(branch, x, a) for branch in node.branches]
            size = min(out.shape[0] for out in outs)
            x = sum(out[:size] for out in outs)
        elif node.kind == "id":
            continue
        else:
            k, s, d, pb, pa = node.axis(a)
            taps = np.array([float(t) for t in node.taps(a)])
            if node.transposed:
                grown = np.zeros(((x.shape[0] - 1) * s + 1, x.shape[1]), dtype=np.float32)
                grown[::s] = x
                before, after = (k - 1) * d - pb, (k - 1) * d - pa
                grown = grown[max(0, -before) : grown.shape[0] - max(0, -after)]
                x = np.pad(grown, ((max(0, before), max(0, after)), (0, 0)))
                taps = taps[::-1]
                stride = 1
            else:
                x = np.pad(x, ((pb, pa), (0, 0)))
                stride = s
            if x.shape[0] < (k - 1) * d + 1:
                x = np.zeros((0, x.shape[1]), dtype=np.float32)
                continue
            x = dilated_correlate(x, taps, d, mode="valid", boundary="constant")[::stride]
        x = (x > 0).astype(np.float32)
    return x


# --- effective receptive field (Luo et al. 2016) --------------------------------------


@dataclass
class EffectiveField:
    """The effective receptive field of one output.

    ``map``: |impulse response| normalised to sum 1, over the output's box (``top``,
    ``left`` are the input coordinates of ``map[0, 0]``); ``centre``: the output's field
    centre (input coordinates); ``ratios``: for each share ``t`` the smallest square
    (rectangle when the centre's parities differ) centred there holding ``t`` of the
    total, as ``{"side": (h, w), "area_ratio": h*w / map area, "share": held}``
    (RepLKNet's high-contribution area ratio, relative to the field box); ``mean`` and
    ``sigma``: per-axis mean and standard deviation from the second moments.
    """

    map: object
    top: int
    left: int
    centre: tuple
    ratios: dict
    mean: tuple
    sigma: tuple


def effective_receptive_field(
    network, weights="random", *, seed=0, at=(0, 0), shares=(0.2, 0.3, 0.5, 0.99)
):
    """The ERF of output ``at`` through the linear skeleton with the given weights.

    ``weights``: ``'random'`` (normal, one 2-D kernel per conv and transposed conv,
    from ``seed``), ``'uniform'`` (ones / taps), or a list of arrays, one per conv /
    convT layer in the order they appear (branches in order): 2-D ``(kh, kw)``, or 4-D
    ``(C_out, C_in, kh, kw)`` whose ``|W|`` summed over channel pairs is used. Pooling is a box,
    upsampling its interpolation footprint, branches add. The map is ``|response|``,
    normalised to sum 1. ValueError past :data:`MAX_MAP_CELLS` or :data:`MAX_MAP_WORK`.
    """
    import numpy as np

    _check_map(network)
    weighted = [op for op in _ops(network.nodes) if op.kind in ("conv", "convT")]
    if isinstance(weights, str):
        if weights not in ("random", "uniform"):
            raise ValueError(f"weights must be random, uniform or arrays; got {weights!r}")
        rng = np.random.default_rng(seed)
        if weights == "random":
            arrays = [rng.standard_normal(op.kernel) for op in weighted]
        else:
            arrays = [np.full(op.kernel, 1.0 / math.prod(op.kernel)) for op in weighted]
    else:
        # (C_out, C_in, kh, kw) layers: |W| summed over the channel pairs, the usual
        # stand-in (docs/design.md, section 8); exact for one channel.
        arrays = [np.asarray(w, dtype=np.float64) for w in weights]
        arrays = [np.abs(w).sum(axis=(0, 1)) if w.ndim == 4 else w for w in arrays]
        if len(arrays) != len(weighted):
            raise ValueError(
                f"{len(arrays)} weight arrays for {len(weighted)} conv layers: give one each"
            )
    if sum(math.prod(op.kernel) for op in weighted) > MAX_MAP_CELLS or any(
        max(op.kernel) > 4096 for op in weighted
    ):
        raise ValueError(
            f"the weights would take over {MAX_MAP_CELLS:,} values, or a kernel is over 4096 "
            "taps wide"
        )
    if not isinstance(weights, str):
        for number, (op, w) in enumerate(zip(weighted, arrays), 1):
            if w.shape != tuple(op.kernel):
                raise ValueError(
                    f"weights {number} have shape {w.shape}; the layer needs {op.kernel}"
                )
            if not np.isfinite(w).all():
                raise ValueError(f"weights {number} hold NaN or infinity")

    def weight_of(node):
        if isinstance(node, _Numbered):
            return arrays[node.number]
        taps = [np.array([float(t) for t in node.taps(a)]) for a in (0, 1)]
        return [list(t / t.size) if node.kind == "pool" else list(t) for t in taps]

    nodes = _numbered(network.nodes, iter(range(len(arrays))))
    budget = _Budget(MAX_MAP_CELLS, MAX_MAP_WORK, "effective receptive field")
    got = _back(nodes, np.ones((1, 1)), tuple(at), (0, 1), weight_of, False, budget)
    if got is None:
        raise ValueError("this output reads no input")
    array, (top, left) = got
    array = np.abs(array)
    total = array.sum()
    if total == 0 or not np.isfinite(total):
        raise ValueError("the impulse response is zero or not finite with these weights")
    array = array / total
    centre = tuple(
        Fraction(f.window(o)[0] + (Fraction(f.size) - 1) / 2) for f, o in zip(network.field, at)
    )
    ratios = _square_shares(array, (centre[0] - top, centre[1] - left), shares)
    mean, sigma = [], []
    for a, origin in enumerate((top, left)):
        line = array.sum(axis=1 - a)
        where = np.arange(line.size) + origin
        m = float((line * where).sum())
        mean.append(m)
        sigma.append(math.sqrt(max(0.0, float((line * (where - m) ** 2).sum()))))
    return EffectiveField(array, top, left, centre, ratios, tuple(mean), tuple(sigma))


@dataclass(frozen=True)
class _Numbered:
    """A weighted layer with its place in forward order (repeats share one Op)."""

    op: Op
    number: int

    @property
    def kind(self):
        return self.op.kind


def _numbered(nodes, counter):
    result = []
    for node in nodes:
        if isinstance(node, Merge):
            node = Merge(node.kind, tuple(_numbered(b, counter) for b in node.branches))
        elif node.kind in ("conv", "convT"):
            node = _Numbered(node, next(counter))
        result.append(node)
    return tuple(result)


def _square_shares(array, centre, shares):
    import numpy as np

    h, w = array.shape
    summed = np.zeros((h + 1, w + 1))
    summed[1:, 1:] = array.cumsum(0).cumsum(1)
    ch, cw = centre
    result = {}
    most = max(h, w)
    for share in shares:
        for m in range(most + 1):
            r0, r1 = max(0, math.floor(ch) - m), min(h - 1, math.ceil(ch) + m)
            c0, c1 = max(0, math.floor(cw) - m), min(w - 1, math.ceil(cw) + m)
            held = summed[r1 + 1, c1 + 1] - summed[r0, c1 + 1] - summed[r1 + 1, c0] + summed[r0, c0]
            if held >= share - 1e-12 or m == most:
                side = (
                    math.ceil(ch) - math.floor(ch) + 2 * m + 1,
                    math.ceil(cw) - math.floor(cw) + 2 * m + 1,
                )
                result[share] = {
                    "side": side,
                    "area_ratio": side[0] * side[1] / (h * w),
                    "share": float(held),
                }
                break
    return result
