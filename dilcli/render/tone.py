"""A tone curve for responses, with a scale that comes from the kernel, never the image.

The ``tone`` mapping shows ``|y|`` through a soft-saturating curve::

    t = 1 - exp(-|y| / s)

with ``s`` fixed by the kernel (or the stack of layers) and the dilation alone, so every
image of a batch is mapped by the same rule and stays comparable. Weak responses are
shown linearly (``t ~ |y| / s``, as ``abs`` with gain ``1/s``); strong ones approach
white without reaching it: an 8-bit pixel is 255 only where ``|y| >= ln(510) s``.

The scale is ``s = SCALE_PER_RMS * rms``, where ``rms`` is the root mean square of the
response to a model natural image (:class:`ImageModel`): mean 0.45, standard
deviation 0.2, a ``1/f^2`` power spectrum (the classic finding of Field 1987 and van
der Schaaf & van Hateren 1996) seen through a Gaussian blur of 0.5 pixel (a pixel's
aperture plus optics and demosaicing). The response's variance is the integral of
``|H(f)|^2 P(f)`` over the spectrum, with ``H`` the transfer function of the dilated
kernel, or of a whole stack composed layer by layer, computed exactly on a frequency
grid. Why these choices (benchmarks/saturation.py measures them on sample_images):

- On the sample images at dilations 1-16 the 99.5th percentile of ``|y|`` divided by
  this ``rms`` stays within 1.0-5.2 for every signed named kernel, the gradient
  magnitudes and the seed's stacks (laplacian at 1,2,4,8; random kernels; context-basic),
  whose ``rms`` spans 0.003 to 265. Divided by ``sum |w|`` instead, the spread is 19x
  for single kernels, and the product of ``sum |w|`` through the laplacian stack drifts
  7x more from layer 1 to layer 4. Among spectra ``1/f^a`` blurred
  by ``b``, ``a = 2, b = 0.5`` gives about the smallest spread (4.4x for single kernels).
- The goals are at most 2 % of pixels at 255 and the brightest 0.5 % at 15 % of full
  scale or more. With ``u = |y| / s`` the curve reaches 15 % at ``u = 0.1625`` and
  255 at ``u = ln(510) = 6.23``. ``SCALE_PER_RMS = 2`` puts the measured extremes an
  equal factor inside both limits: the dimmest 99.5th percentile (1.02 rms) at
  ``u = 0.51``, 3.1x above 0.1625, and the largest 98th percentile (4.1 rms) at
  ``u = 2.06``, 3.0x below 6.23. The median 99.5th percentile (2.9 rms) lands at 77 %
  of full scale (all cases: 40-93 %), about what ``abs`` shows at dilation 1.

Pure numpy; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dilcli.core.kernels import B3SPLINE

# s = SCALE_PER_RMS * (RMS response to the model image); see the module docstring.
SCALE_PER_RMS = 2.0
# u = |y| / s at which an 8-bit pixel rounds to 255: 1 - exp(-u) >= 254.5 / 255.
SATURATION_U = math.log(510.0)


@dataclass(frozen=True)
class ImageModel:
    """The statistics of a natural grey image in [0, 1], the input a scale is made for.

    Parameters
    ----------
    mean : float
        Mean grey level (sample_images: 0.39-0.51, bar the Hubble deep field's 0.08).
    std : float
        Standard deviation, the RMS contrast (sample_images: 0.10-0.32).
    exponent : float
        ``a`` in the power spectrum ``P(f) ~ 1 / |f|^a`` (``f`` in cycles per pixel);
        2 is the natural-image spectrum, 0 white noise.
    blur : float
        Standard deviation in pixels of a Gaussian blur applied to that spectrum
        (``P(f) * exp(-(2 pi blur |f|)^2)``); 0 for none.
    size : int
        Side of the square frequency grid (the image size the spectrum is spread over:
        its lowest frequency is ``1/size``).
    """

    mean: float = 0.45
    std: float = 0.2
    exponent: float = 2.0
    blur: float = 0.5
    size: int = 256


NATURAL_IMAGES = ImageModel()


def kernel_scale(kernel, dilation=1, *, model=NATURAL_IMAGES):
    """The tone scale ``s`` of a 2-D kernel at ``dilation``: ``SCALE_PER_RMS * rms``.

    Parameters
    ----------
    kernel : ndarray or Kernel or sequence of ndarray
        2-D weights; a :class:`dilcli.kernels.Kernel` (its ``parts``); or several 2-D
        weight arrays whose responses are combined as a magnitude
        ``sqrt(sum y_k^2)`` (a gradient pair, as ``dilcli.conv.apply_kernel`` does).
    dilation : int or (int, int)
        One dilation, or one per axis (rows, columns).
    model : ImageModel
        The input the scale is made for.

    Returns
    -------
    float
        ``SCALE_PER_RMS * response_rms(kernel, dilation, model=model)``; 0 for an
        all-zero kernel.
    """
    return SCALE_PER_RMS * response_rms(kernel, dilation, model=model)


def response_rms(kernel, dilation=1, *, model=NATURAL_IMAGES):
    """Root mean square of a kernel's response to the model image (see :class:`ImageModel`).

    For weights ``w`` with transfer function ``H`` at ``dilation``::

        rms^2 = (mean * sum(w))^2 + sum_f |H(f)|^2 P(f)

    with ``P`` the model's power spectrum without its zero frequency, normalised to
    ``sum_f P(f) = std^2``; for several parts (a gradient pair) the squares add. On
    white noise (``exponent=0, blur=0``) a zero-sum kernel gives
    ``std * sqrt(sum w^2) * size / sqrt(size^2 - 1)``, at any dilation; the identity
    gives ``sqrt(mean^2 + std^2)``.
    """
    parts = _parts(kernel)
    dilations = _dilation_pair(dilation)
    fy, fx, power = _spectrum(model)
    total = 0.0
    for weights in parts:
        transfer = _transfer(weights, dilations, fy, fx)
        total += (model.mean * float(weights.sum())) ** 2 + _variance(transfer, power)
    return math.sqrt(total)


def stack_scales(layers, channels=1, *, model=NATURAL_IMAGES, average_channels=False):
    """The tone scale of every layer's output in a stack: ``SCALE_PER_RMS * rms``.

    See :func:`stack_rms` for the parameters.
    """
    return [
        SCALE_PER_RMS * rms
        for rms in stack_rms(layers, channels, model=model, average_channels=average_channels)
    ]


def stack_rms(layers, channels=1, *, model=NATURAL_IMAGES, average_channels=False):
    """RMS of every layer's output when the stack runs on the model image.

    Every input channel is the model image (an RGB photo's channels are nearly alike).
    Each output channel is tracked as a mean plus a transfer function from the image's
    zero-mean part, composed exactly through the layers (the product of the layers'
    transfer functions, summed over channels for mixing layers); a bias adds to the
    mean. A ReLU is modelled by the moments of a rectified Gaussian: a channel with
    mean ``m`` and standard deviation ``sigma`` leaves it with the mean and variance of
    ``max(N(m, sigma^2), 0)``, its transfer function scaled to that variance.

    Parameters
    ----------
    layers : sequence of Layer
        Objects with ``weights`` (``(C_out, C_in, kh, kw)`` mixing or ``(kh, kw)`` per
        channel), ``dilation``, ``bias`` (None or values) and ``truncate`` (ReLU), as
        :class:`dilcli.context.Layer`.
    channels : int
        Channels of the input.
    model : ImageModel
    average_channels : bool or sequence of bool
        Give the RMS of the mean over channels (what a PNG of a feature map with other
        than 1 or 3 channels shows) instead of the RMS over all channels; one flag for
        every layer, or one per layer.

    Returns
    -------
    list of float
        One RMS per layer, of its output. Cost: ``kh * kw * C_out * C_in`` products of
        ``size * (size/2 + 1)`` complex values per layer.
    """
    fy, fx, power = _spectrum(model)
    state = np.ones((channels, fy.shape[0], fx.shape[1]), np.complex128)
    means = np.full(channels, float(model.mean))
    result = []
    layers = list(layers)
    averages = (
        [bool(average_channels)] * len(layers)
        if isinstance(average_channels, (bool, int))
        else [bool(a) for a in average_channels]
    )
    if len(averages) != len(layers):
        raise ValueError(f"average_channels needs one flag per layer ({len(layers)})")
    for layer, average in zip(layers, averages):
        weights = np.asarray(layer.weights, dtype=float)
        dilations = _dilation_pair(layer.dilation)
        if weights.ndim == 4:
            state = _mix(weights, dilations, state, fy, fx)
            means = weights.sum(axis=(2, 3)) @ means
        elif weights.ndim == 2:
            state = state * _transfer(weights, dilations, fy, fx)
            means = means * float(weights.sum())
        else:
            raise ValueError(f"layer weights must be 2-D or 4-D, got shape {weights.shape}")
        if layer.bias is not None:
            means = means + np.broadcast_to(np.asarray(layer.bias, dtype=float), means.shape)
        if layer.truncate:
            for c in range(len(means)):
                variance = _variance(state[c], power)
                means[c], rectified = _rectified_moments(float(means[c]), variance)
                if variance > 0:
                    state[c] *= math.sqrt(rectified / variance)
        shown, shown_means = state, means
        if average:
            shown, shown_means = state.mean(axis=0, keepdims=True), means.mean(keepdims=True)
        squares = [m * m + _variance(h, power) for m, h in zip(shown_means, shown)]
        result.append(math.sqrt(float(np.mean(squares))))
    return result


def starlet_scales(levels, *, model=NATURAL_IMAGES):
    """The tone scale of every plane ``w_1 .. w_J`` of the starlet and of its residual.

    ``c_0 = x``, ``c_j = b3_(2^(j-1)) * c_(j-1)``, ``w_j = c_(j-1) - c_j`` (docs/design.md,
    section 10): the plane's transfer function is ``T_(j-1) (1 - B_j)`` with ``T`` the
    product of the B3-spline's transfer functions so far; its mean is 0 (the B3-spline
    sums to 1), the residual keeps the image's mean.

    Returns
    -------
    list of float
        ``levels + 1`` scales: the planes, then the residual ``c_J``.
    """
    fy, fx, power = _spectrum(model)
    smooth = np.ones((fy.shape[0], fx.shape[1]), np.complex128)
    scales = []
    centre = B3SPLINE.shape[0] // 2
    for level in range(int(levels)):
        # Centred, as 'same' mode applies it: the plane is a difference of two images, so
        # the phase matters (a product of transfer functions only needs |H|).
        dilation = 2**level
        shift = np.exp(2j * np.pi * centre * dilation * (fy + fx))
        blurred = smooth * _transfer(B3SPLINE, (dilation, dilation), fy, fx) * shift
        scales.append(SCALE_PER_RMS * math.sqrt(_variance(smooth - blurred, power)))
        smooth = blurred
    residual = math.sqrt(model.mean**2 + _variance(smooth, power))
    return scales + [SCALE_PER_RMS * residual]


def kernel_gain(kernel):
    """The worst-case gain ``max |y| / max |x|`` of a kernel: ``sum |w|``.

    For a gradient pair, ``hypot`` of its parts' gains (the magnitude of two responses
    that each reach their own bound). A kernel with non-negative weights summing to at
    most 1 (a blur, the identity) keeps an input in [0, 1] within [0, 1].
    """
    return math.sqrt(sum(float(np.abs(part).sum()) ** 2 for part in _parts(kernel)))


def stack_gains(layers):
    """The worst-case gain of every layer's output in a stack, relative to ``max |x|``.

    A layer's bound is, over its output channels, the largest
    ``sum |W[o]| * (bound of the layer before) + |bias[o]|``, with ``sum |W[o]|`` over
    input channels and taps (``sum |w|`` for a per-channel kernel); a ReLU never
    raises it. The identity-initialised context-basic module has gain 1 at every layer.
    """
    bound, result = 1.0, []
    for layer in layers:
        weights = np.abs(np.asarray(layer.weights, dtype=float))
        rows = weights.sum(axis=(1, 2, 3)) if weights.ndim == 4 else weights.sum()[np.newaxis]
        bias = 0.0 if layer.bias is None else np.abs(np.asarray(layer.bias, dtype=float))
        bound = float(np.max(rows * bound + bias))
        result.append(bound)
    return result


def tone_map(response, scale, out=None):
    """Responses to display values in [0, 1]: ``1 - exp(-|y| / scale)``.

    Parameters
    ----------
    response : array_like
        The response ``y``, any shape (channels are mapped alike).
    scale : float
        ``s > 0``, from :func:`kernel_scale` or :func:`stack_scales` (times nothing
        else: a ``--gain`` multiplies ``y`` before).
    out : ndarray, optional
        float32 array of ``response``'s shape to write into; may be ``response`` itself
        when it is float32 (in place).

    Returns
    -------
    ndarray
        float32 ``t = 1 - exp(-|y| / s)``: 0 at ``y = 0``, ``0.63`` at ``|y| = s``,
        increasing with ``|y|`` and below 1 for finite ``y``; 8-bit rounding reaches
        255 at ``|y| >= ln(510) s ~ 6.23 s``. ``+-Inf`` gives 1, NaN gives 0.
    """
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    response = np.asarray(response)
    if response.dtype.kind not in "f":
        if response.dtype.kind not in "biu":
            raise ValueError(f"response must be real numbers, got dtype {response.dtype}")
        response = response.astype(np.float64)
    if out is None:
        out = np.empty(response.shape, np.float32)
    elif out.dtype != np.float32 or out.shape != response.shape:
        raise ValueError(
            f"out must be float32 of shape {response.shape}, got {out.dtype} {out.shape}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        np.abs(response, out=out)  # float64 beyond float32's range becomes Inf, then 1
        # multiply, not divide: for tiny scales 1/scale may be Inf, and 0 * Inf is NaN
        inverse = 1.0 / scale
        if math.isfinite(inverse) and inverse <= np.finfo(np.float32).max:
            np.multiply(out, np.float32(inverse), out=out)
        else:
            np.divide(out, np.float32(max(scale, float(np.finfo(np.float32).tiny))), out=out)
        np.negative(out, out=out)
        np.expm1(out, out=out)
        np.negative(out, out=out)
    if out.size and np.isnan(out.min()):  # min is NaN when any value is
        np.nan_to_num(out, copy=False, nan=0.0)
    return out


# --- the model's spectrum and transfer functions -----------------------------------------


def _parts(kernel):
    """The weight arrays of ``kernel``: an array, a Kernel, or a sequence of arrays."""
    parts = getattr(kernel, "parts", kernel)
    if not (isinstance(parts, (list, tuple)) and parts and all(np.ndim(p) == 2 for p in parts)):
        parts = (parts,)  # one array (a list of rows is one array too)
    arrays = []
    for part in parts:
        weights = np.asarray(part, dtype=float)
        if weights.ndim != 2 or weights.size == 0:
            raise ValueError(f"kernel weights must be non-empty 2-D arrays, got {weights.shape}")
        if not np.all(np.isfinite(weights)):
            raise ValueError("kernel weights must be finite numbers")
        arrays.append(weights)
    if not arrays:
        raise ValueError("a kernel needs at least one weight array")
    return arrays


def _dilation_pair(dilation):
    values = tuple(np.ravel(dilation).tolist())
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
    ):
        raise ValueError(f"dilation must be one or two positive integers, got {dilation!r}")
    return values


def _spectrum(model):
    """Frequencies ``fy (n, 1)``, ``fx (1, n//2+1)`` and the power on that half-plane.

    The power is counted twice for columns whose mirror image the real FFT half-plane
    omits, has no zero frequency (the mean is handled apart) and sums to ``std^2``.
    """
    n = int(model.size)
    if n < 2:
        raise ValueError(f"model size must be at least 2, got {model.size!r}")
    fy = np.fft.fftfreq(n)[:, np.newaxis]
    fx = np.fft.rfftfreq(n)[np.newaxis, :]
    f2 = fy * fy + fx * fx
    power = np.zeros_like(f2)
    nonzero = f2 > 0
    power[nonzero] = f2[nonzero] ** (-model.exponent / 2)
    if model.blur:
        power *= np.exp(-((2 * np.pi * model.blur) ** 2) * f2)
    power[:, 1 : (n + 1) // 2] *= 2  # their mirror columns, n - 1 ... n//2 + 1
    total = power.sum()
    if total > 0:
        power *= model.std**2 / total
    return fy, fx, power


def _variance(transfer, power):
    return float(np.sum((transfer.real**2 + transfer.imag**2) * power))


def _phases(size, dilation, frequencies):
    """``exp(-2 pi i f t d)`` for taps ``t = 0 .. size-1``: ``(size,) + frequencies.shape``."""
    taps = np.arange(size) * dilation
    return np.exp(-2j * np.pi * taps.reshape((-1,) + (1,) * frequencies.ndim) * frequencies)


def _transfer(weights, dilations, fy, fx):
    """``H(f) = sum_(a, b) w[a, b] exp(-2 pi i (fy a dy + fx b dx))`` on the grid."""
    kh, kw = weights.shape
    rows = _phases(kh, dilations[0], fy)  # (kh, n, 1)
    columns = np.tensordot(weights, _phases(kw, dilations[1], fx), axes=(1, 0))  # (kh, 1, m)
    return np.einsum("anx,axm->nm", rows, columns)


def _mix(weights, dilations, state, fy, fx):
    """A mixing layer on channel transfer functions: ``sum_i H_oi(f) state_i(f)``."""
    c_out, c_in, kh, kw = weights.shape
    rows = _phases(kh, dilations[0], fy)
    columns = _phases(kw, dilations[1], fx)
    flat = state.reshape(c_in, -1)
    out = np.zeros((c_out,) + state.shape[1:], np.complex128)
    for a in range(kh):
        for b in range(kw):
            tap = weights[:, :, a, b]
            if np.any(tap):
                mixed = (tap @ flat).reshape(out.shape)
                out += mixed * (rows[a] * columns[b])
    return out


def _rectified_moments(mean, variance):
    """Mean and variance of ``max(X, 0)`` for ``X ~ N(mean, variance)``."""
    if variance <= 0:
        return max(mean, 0.0), 0.0
    sd = math.sqrt(variance)
    z = mean / sd
    cdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    first = mean * cdf + sd * pdf
    second = (mean * mean + variance) * cdf + mean * sd * pdf
    return first, max(second - first * first, 0.0)
