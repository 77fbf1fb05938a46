"""One layer of a stack, and where its output sits: the vocabulary every stack speaks.

A :class:`Layer` is a dilated kernel: its taps (``weights``) or only their count per
axis (``kernel``), its ``dilation`` and ``stride``, and for a layer that runs a ``bias``
and an ``activation``. The stacks (:mod:`dilcli.core.stacks`) run layers; the
receptive-field maths (:mod:`dilcli.core.receptive`) reads the same layers' geometry
(``kernel``, ``dilation``, ``stride``, ``span``), so the stack that runs is the stack
whose receptive field is printed.

Pure Python at import (numpy is imported when a layer is given weights), so the
receptive-field commands start without numpy.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field

from dilcli.vocab import ACTIVATIONS, choices_text, shape_text


def positive_int(value, name):
    """``value`` as an int, or ValueError naming ``name`` unless it is an integer >= 1."""
    if type(value) is int and value >= 1:
        return value  # the usual case, without the slower abstract type check
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)  # numpy integers become int


def padding_before(span, mode):
    """``o`` in ``y[i] = sum_t w[t] x[i + t*d - o]``: input samples before output 0.

    ``span`` is the dilated kernel's extent ``(k - 1) * d + 1`` along the axis; ``same``
    centres it (the extra sample of an even span on the right), ``valid`` starts at the
    input's first sample, ``full`` and ``causal`` put the whole span before
    (docs/design.md, sections 3 and 11).

    >>> [padding_before(5, mode) for mode in ("same", "valid", "full", "causal")]
    [2, 0, 4, 4]
    """
    if mode == "same":
        return (span - 1) // 2
    if mode == "valid":
        return 0
    if mode in ("full", "causal"):
        return span - 1
    raise ValueError(f"mode must be same, valid, full or causal; got {mode!r}")


def aligned_offset(span, mode):
    """The tap offset an output sample is aligned with: the centre of the span, or for
    ``causal`` its last tap (the present sample). ``valid`` and ``full`` outputs are
    crops and extensions of ``same``, so they share its alignment."""
    return padding_before(span, "causal" if mode == "causal" else "same")


def relu_keyword(relu, truncate, *, stacklevel=3):
    """``relu``, or the deprecated ``truncate`` (its name before 0.2) when that is given."""
    if truncate is None:
        return relu
    warnings.warn(
        "truncate= is now relu= (it switches the ReLU); truncate= will be removed",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return truncate


class _SizePerAxis:
    """``Layer.kernel``: taps per axis, the same on every axis. A layer keeps that number
    in its own attributes, which this (non-data) descriptor gives way to; a kernel like
    3x5 has none, and reading it gives the reason instead."""

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        raise ValueError(
            f"a {shape_text(layer.kernel_shape)} kernel has another size on each axis: "
            "take its receptive field per axis (receptive_field_shapes, along)"
        )


@dataclass(frozen=True, init=False, eq=False, repr=False)
class Layer:
    """One layer of a stack: ``y = activation(correlate(x, weights, dilation) + bias)``,
    kept at every ``stride``-th position.

    Parameters
    ----------
    kernel : int or array_like
        An int: the kernel's taps per axis, for receptive-field geometry only (the same
        on every axis). An array: the weights, which a stack can run: ``(k,)`` or
        ``(kh, kw)`` applied to every channel alike, or ``(C_out, C_in, k)`` or
        ``(C_out, C_in, kh, kw)`` mixing channels like a conv layer (1-D or 2-D).
    dilation : int
        Spacing between taps, >= 1 (the same on every axis).
    stride : int
        Keep every ``stride``-th output position (on every axis), >= 1.
    weights : array_like, optional
        The weights by keyword, instead of ``kernel``.
    bias : array_like, optional
        ``(C_out,)`` for a mixing layer; a scalar or one value per channel otherwise.
    activation : {'none', 'relu', 'tanh'}
        Applied after the bias.
    relu : bool, optional
        ``True`` for ``activation='relu'``, ``False`` for ``'none'``.
    truncate : bool, optional
        Deprecated name of ``relu``.

    Examples
    --------
    >>> Layer(3, 2)
    Layer(kernel=3, dilation=2, stride=1)
    >>> layer = Layer([[0, 1, 0], [1, -4, 1], [0, 1, 0]], 2, relu=True)
    >>> layer.kernel, layer.span, layer.activation
    (3, 5, 'relu')
    """

    # The defaults are class attributes: a layer given by its size stores only the rest.
    weights: object = None  # ndarray, or None for a layer given by its size
    dilation: int = 1
    stride: int = 1
    bias: object = None
    activation: str = "none"
    # The size per axis of a layer without weights (what dataclasses.replace passes on).
    _size: int | None = field(default=None, repr=False)

    def __init__(
        self,
        kernel=None,
        dilation=1,
        stride=1,
        *legacy,
        weights=None,
        bias=None,
        activation=None,
        relu=None,
        truncate=None,
        _size=None,
    ):
        if (
            type(kernel) is int
            and type(dilation) is int
            and type(stride) is int
            and kernel >= 1
            and dilation >= 1
            and stride >= 1
            and not legacy
            and activation is relu is truncate is bias is weights is None
        ):  # a layer given by its size, the tables' usual case: no checks to make
            self.__dict__.update(dilation=dilation, stride=stride, _size=kernel, kernel=kernel)
            return
        if weights is not None:
            if kernel is not None:
                raise ValueError("give the kernel's size or its weights, not both")
            kernel = weights
        elif kernel is None:
            kernel = _size
        if kernel is None:
            raise ValueError("a layer needs a kernel: its size (an int) or its weights")
        sized = isinstance(kernel, numbers.Integral) and not isinstance(kernel, bool)
        if len(legacy) > (0 if sized else 1):  # Layer(3, 2, 1, True) dropped the True
            most = "3 (kernel, dilation, stride)" if sized else "4 (weights, dilation, bias, relu)"
            raise TypeError(
                f"Layer takes at most {most} positional arguments, got {3 + len(legacy)}"
            )
        if not sized and (legacy or not isinstance(stride, numbers.Integral)):
            # dilcli 0.1's weights layer: Layer(weights, dilation, bias, truncate).
            warnings.warn(
                "Layer(weights, dilation, bias, truncate) is now "
                "Layer(weights, dilation, bias=..., relu=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            bias, stride = stride, 1
            if legacy:
                relu = bool(legacy[0])
        set_ = object.__setattr__
        set_(self, "dilation", positive_int(dilation, "dilation"))
        set_(self, "stride", positive_int(stride, "stride"))
        if relu is not None and truncate is not None and bool(relu) != bool(truncate):
            raise ValueError(f"relu={relu!r} contradicts truncate={truncate!r}, its old name")
        relu = relu_keyword(relu, truncate)
        if activation is None:
            activation = "relu" if relu else "none"
        elif relu is not None and relu != (activation == "relu"):
            raise ValueError(f"relu={relu!r} contradicts activation={activation!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be {choices_text(ACTIVATIONS)}; got {activation!r}")
        set_(self, "activation", activation)
        if sized:
            if bias is not None:
                raise ValueError("a bias needs weights: give the kernel's weights, not its size")
            size = positive_int(kernel, "kernel")
            set_(self, "_size", size)
            set_(self, "kernel", size)
            return
        if isinstance(kernel, (numbers.Number, str, bytes)):
            raise ValueError(
                f"kernel must be a positive integer or an array of weights, got {kernel!r}"
            )
        self._set_weights(kernel, bias)

    def _set_weights(self, weights, bias):
        import numpy as np

        weights = np.asarray(weights)
        if weights.ndim not in (1, 2, 3, 4) or weights.size == 0:
            raise ValueError(
                "layer weights must be (k,), (k, k), (C_out, C_in, k) or (C_out, C_in, k, k), "
                f"got shape {weights.shape}"
            )
        if weights.dtype.kind not in "biuf" or not np.all(np.isfinite(weights)):
            raise ValueError("layer weights must be finite real numbers")
        if bias is not None:
            bias = np.asarray(bias)
            if bias.dtype.kind not in "biuf" or not np.all(np.isfinite(bias)):
                raise ValueError("bias must be finite real numbers")
            if weights.ndim > 2 and bias.shape != (weights.shape[0],):
                raise ValueError(
                    f"bias of shape {bias.shape} does not fit weights {weights.shape}: "
                    f"expected ({weights.shape[0]},)"
                )
            if weights.ndim <= 2 and bias.ndim > 1:
                raise ValueError(
                    f"bias of a per-channel layer must be 0-D or 1-D, got {bias.shape}"
                )
        spatial = 1 if weights.ndim in (1, 3) else 2
        shape = tuple(int(n) for n in weights.shape[-spatial:])
        set_ = object.__setattr__
        set_(self, "weights", weights)
        set_(self, "bias", bias)
        set_(self, "_size", None)
        set_(self, "_shape", shape)
        if len(set(shape)) == 1:
            set_(self, "kernel", shape[0])  # else the class's kernel explains the error

    # --- geometry: what the receptive-field maths reads ------------------------------

    kernel = _SizePerAxis()

    @property
    def kernel_shape(self):
        """Taps along each spatial axis: ``(kh, kw)``, ``(k,)``; ``(k,)`` for a layer
        given by its size alone (the same on every axis)."""
        return self._shape if self.weights is not None else (self._size,)

    @property
    def ndim(self):
        """Spatial axes the weights work on (1 or 2); None for a layer without weights."""
        if self.weights is None:
            return None
        return 1 if self.weights.ndim in (1, 3) else 2

    @property
    def span(self):
        """Samples one dilated kernel covers: ``(k - 1) * d + 1``."""
        return (self.kernel - 1) * self.dilation + 1

    def along(self, axis):
        """This layer's geometry along one spatial ``axis``, as a layer of its own."""
        size = self._shape[axis] if self.weights is not None else self._size
        return Layer(size, self.dilation, self.stride)

    # --- channels and activation: what a stack reads ---------------------------------

    @property
    def relu(self):
        """True when a ReLU follows the layer."""
        return self.activation == "relu"

    @property
    def truncate(self):
        """The old name of :attr:`relu`."""
        return self.activation == "relu"

    @property
    def mixes_channels(self):
        return self.weights is not None and self.weights.ndim > 2

    @property
    def in_channels(self):
        """Input channels the weights expect, or None for a per-channel layer."""
        return self.weights.shape[1] if self.mixes_channels else None

    def out_channels(self, in_channels):
        return self.weights.shape[0] if self.mixes_channels else in_channels

    # --- a value: immutable, compared by what it computes -----------------------------

    def _key(self):
        geometry = (self.kernel_shape, self.dilation, self.stride)
        return (*geometry, self.activation, self.weights is None)

    def __eq__(self, other):
        if not isinstance(other, Layer):
            return NotImplemented
        if self._key() != other._key():
            return False
        if self.weights is None:
            return True
        import numpy as np

        same_bias = (self.bias is None) == (other.bias is None) and (
            self.bias is None or np.array_equal(self.bias, other.bias)
        )
        return same_bias and np.array_equal(self.weights, other.weights)

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        if self.weights is None:
            return f"Layer(kernel={self._size}, dilation={self.dilation}, stride={self.stride})"
        parts = [
            f"weights=<{self.weights.dtype} {self.weights.shape}>",
            f"dilation={self.dilation}",
        ]
        if self.stride != 1:
            parts.append(f"stride={self.stride}")
        if self.bias is not None:
            parts.append(f"bias=<{self.bias.shape}>")
        parts.append(f"activation={self.activation!r}")
        return f"Layer({', '.join(parts)})"
