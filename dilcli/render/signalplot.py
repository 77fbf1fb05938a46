"""The ``dilcli signal --plot`` picture, drawn with Pillow.

One row per trace, the input on top and each output below it, on a shared time axis
(``valid`` and ``full`` outputs sit where their samples line up with the input). Left of
each output, the kernel's taps at that dilation on a common scale of sample offsets, as
in the seed notebook's figure: grey dots are the samples skipped, red stems the taps
(their height and sign the weight), the triangle the output sample. A shaded band in
each row is the receptive field of one output sample in the middle of the signal.

Pillow is imported inside the functions, so loading this module costs nothing.
"""

from __future__ import annotations

import math

import numpy as np

WIDTH = 1400
ROW_HEIGHT = 128
ROW_GAP = 14
TAPS_WIDTH = 230
Y_LABELS = 64
TOP = 46
BOTTOM = 50
MARGIN = 16
SUPERSAMPLE = 2  # drawn at twice the size, then reduced: smooth lines without antialiasing

CHANNEL_COLORS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
TAP_COLOR = (214, 39, 40)
BAND_COLOR = (255, 241, 196)
GRID_COLOR = (228, 228, 228)
AXIS_COLOR = (150, 150, 150)
TEXT_COLOR = (30, 30, 30)
KEY = (
    "left: the kernel's taps at each",
    "dilation; red stems read the input,",
    "grey dots are skipped, the triangle",
    "marks the output sample.",
    "yellow band: the input samples",
    "one output sample sees.",
)


def signal_plot_pixels(signal, layers, kernel, mode, *, stack=False, name=""):
    """RGB uint8 picture of ``signal`` and its layers' outputs, as
    :func:`dilcli.core.stacks.signal_outputs` gives them."""
    rows = [("input", signal.positions(0, signal.length), signal.data, None, None)]
    centre = signal.length // 2
    low = high = 0
    for number, layer in enumerate(layers, 1):
        if stack:  # a stack's footprint is the sum of its layers' extents
            low, high = low + int(layer.offsets.min()), high + int(layer.offsets.max())
            label = f"layer {number}: d={layer.dilation}, receptive field {high - low + 1}"
        else:
            low, high = int(layer.offsets.min()), int(layer.offsets.max())
            label = f"d={layer.dilation}, span {high - low + 1}"
        band = signal.positions(centre + low, 1)[0], signal.positions(centre + high, 1)[0]
        x = signal.positions(layer.start, len(layer.response))
        rows.append((label, x, layer.response, layer, band))
    weights = ", ".join(f"{w:g}" for w in np.asarray(kernel.parts[0]).ravel())
    title = f"{name}   {kernel.name} [{weights}]   mode {mode}" + ("   stacked" if stack else "")
    return _draw(rows, title, signal.axis_label, signal.channel_names, _sample_step(signal))


def _sample_step(signal):
    if signal.length < 2:
        return 1.0
    positions = signal.positions(0, 2)
    return float(positions[1] - positions[0]) or 1.0


def _draw(rows, title, axis_label, channel_names, step):
    from PIL import Image, ImageDraw, ImageFont

    s = SUPERSAMPLE
    height = TOP + len(rows) * (ROW_HEIGHT + ROW_GAP) + BOTTOM
    canvas = Image.new("RGB", (WIDTH * s, height * s), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13 * s)
    small = ImageFont.load_default(size=11 * s)
    bold = ImageFont.load_default(size=15 * s)

    left = TAPS_WIDTH + Y_LABELS
    right = WIDTH - MARGIN
    x_min = min(float(np.min(x)) for _, x, *_ in rows) - step / 2
    x_max = max(float(np.max(x)) for _, x, *_ in rows) + step / 2
    if not x_max > x_min:
        x_max = x_min + 1.0

    def px(value):
        return (
            left + (np.asarray(value, dtype=np.float64) - x_min) / (x_max - x_min) * (right - left)
        ) * s

    draw.text((MARGIN * s, 14 * s), title, fill=TEXT_COLOR, font=bold)
    _legend(draw, channel_names, right * s, 16 * s, small)
    ticks = _nice_ticks(x_min, x_max)
    tap_range = _tap_range([row[3] for row in rows if row[3] is not None])

    for index, (label, x, values, layer, band) in enumerate(rows):
        top = TOP + index * (ROW_HEIGHT + ROW_GAP)
        box = (left * s, top * s, right * s, (top + ROW_HEIGHT) * s)
        values = np.asarray(values, dtype=np.float64).reshape(len(x), -1)
        if band is not None:
            draw.rectangle(
                (px(band[0] - step / 2), box[1], px(band[1] + step / 2), box[3]), fill=BAND_COLOR
            )
        for tick in ticks:
            draw.line((px(tick), box[1], px(tick), box[3]), fill=GRID_COLOR, width=s)
        y_low, y_high = _value_range(values)

        def py(value, y_low=y_low, y_high=y_high, top=top):
            inner = ROW_HEIGHT - 16
            return (
                top + 8 + (y_high - np.asarray(value, dtype=np.float64)) / (y_high - y_low) * inner
            ) * s

        if y_low < 0 < y_high:
            draw.line((box[0], py(0), box[2], py(0)), fill=AXIS_COLOR, width=s)
        for channel in range(values.shape[1]):
            color = CHANNEL_COLORS[channel % len(CHANNEL_COLORS)]
            _trace(draw, px(x), py(values[:, channel]), color, s)
        draw.rectangle(box, outline=AXIS_COLOR, width=s)
        for value in (y_high, y_low):
            draw.text(
                (box[0] - 6 * s, py(value)),
                f"{value:.3g}",
                fill=TEXT_COLOR,
                font=small,
                anchor="rm",
            )
        _label(draw, (box[0] + 6 * s, box[1] + 5 * s), label, font)
        taps_box = (MARGIN * s, (top + 4) * s, (TAPS_WIDTH - 10) * s, (top + ROW_HEIGHT - 4) * s)
        if layer is None:
            for line, text in enumerate(KEY):
                draw.text(
                    (taps_box[0], taps_box[1] + (8 + 18 * line) * s),
                    text,
                    fill=TEXT_COLOR,
                    font=small,
                )
        else:
            _taps(draw, taps_box, layer, tap_range, small, s)

    bottom = TOP + len(rows) * (ROW_HEIGHT + ROW_GAP) - ROW_GAP
    for tick in ticks:
        draw.line((px(tick), bottom * s, px(tick), (bottom + 5) * s), fill=AXIS_COLOR, width=s)
        draw.text(
            (px(tick), (bottom + 7) * s), f"{tick:g}", fill=TEXT_COLOR, font=small, anchor="mt"
        )
    draw.text(
        ((left + right) / 2 * s, (bottom + 26) * s),
        axis_label,
        fill=TEXT_COLOR,
        font=font,
        anchor="mt",
    )
    canvas = canvas.resize((WIDTH, height), Image.Resampling.LANCZOS)
    return np.asarray(canvas)


def _value_range(values):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -1.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return low - 1.0, high + 1.0
    pad = 0.05 * (high - low)
    return low - pad, high + pad


def _trace(draw, xs, ys, color, s):
    """A polyline; many samples per pixel column become that column's min-max stroke."""
    ys = np.where(np.isfinite(ys), ys, np.nan)
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size == 0:
        return
    if xs.size == 1:
        draw.ellipse((xs[0] - 2 * s, ys[0] - 2 * s, xs[0] + 2 * s, ys[0] + 2 * s), fill=color)
        return
    columns = np.floor(xs / s).astype(np.int64)
    if xs.size > 2 * (columns[-1] - columns[0] + 1):
        starts = np.r_[0, np.flatnonzero(np.diff(columns)) + 1]
        ends = np.r_[starts[1:] - 1, len(ys) - 1]
        centre = (columns[starts] + 0.5) * s
        stroke = np.stack(
            [
                ys[starts],
                np.minimum.reduceat(ys, starts),
                np.maximum.reduceat(ys, starts),
                ys[ends],
            ],
            axis=1,
        )
        points = np.stack([np.repeat(centre, 4), stroke.ravel()], axis=1)
    else:
        points = np.stack([xs, ys], axis=1)
    draw.line(
        [tuple(p) for p in points.tolist()], fill=color, width=max(1, round(1.5 * s)), joint="curve"
    )
    if xs.size <= 120:  # few samples: show each, like the seed's scatter
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            draw.ellipse((x - 2.5 * s, y - 2.5 * s, x + 2.5 * s, y + 2.5 * s), fill=color)


def _tap_range(layers):
    if not layers:
        return -1, 1
    low = min(int(layer.offsets.min()) for layer in layers)
    high = max(int(layer.offsets.max()) for layer in layers)
    return min(low, 0), max(high, 0)


def _taps(draw, box, layer, tap_range, font, s):
    """The kernel's taps at this dilation, on a scale shared by every row."""
    x0, y0, x1, y1 = box
    low, high = tap_range
    base = (y0 + y1) / 2 + 8 * s
    reach = (y1 - y0) / 2 - 14 * s

    def tx(offset):
        return x0 + 8 * s + (offset - low + 0.5) / (high - low + 1) * (x1 - x0 - 16 * s)

    draw.text((x0, y0), f"taps at d={layer.dilation}", fill=TEXT_COLOR, font=font)
    draw.line((tx(low - 0.5), base, tx(high + 0.5), base), fill=AXIS_COLOR, width=s)
    if high - low <= 80:
        for offset in range(low, high + 1):
            draw.ellipse(
                (tx(offset) - 1.5 * s, base - 1.5 * s, tx(offset) + 1.5 * s, base + 1.5 * s),
                fill=AXIS_COLOR,
            )
    weights = np.asarray(layer.weights, dtype=np.float64)
    largest = float(np.abs(weights).max()) or 1.0
    for offset, weight in zip(layer.offsets.tolist(), weights.tolist(), strict=True):
        x, y = tx(offset), base - weight / largest * reach
        draw.line((x, base, x, y), fill=TAP_COLOR, width=2 * s)
        radius = 3.5 * s
        if weight == 0:
            draw.ellipse(
                (x - radius, base - radius, x + radius, base + radius), outline=TAP_COLOR, width=s
            )
        else:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=TAP_COLOR)
    x = tx(0)
    draw.polygon(
        [(x, base + 5 * s), (x - 5 * s, base + 13 * s), (x + 5 * s, base + 13 * s)], fill=TEXT_COLOR
    )


def _label(draw, xy, text, font):
    x, y = xy
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    pad = font.size // 4
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=(255, 255, 255))
    draw.text((x, y), text, fill=TEXT_COLOR, font=font)


def _legend(draw, names, right, y, font):
    x = right
    for index in reversed(range(len(names))):
        name = names[index]
        width = draw.textlength(name, font=font)
        x -= width
        draw.text((x, y), name, fill=TEXT_COLOR, font=font)
        color = CHANNEL_COLORS[index % len(CHANNEL_COLORS)]
        height = font.size / 2 + y
        draw.line(
            (x - 26 * SUPERSAMPLE, height, x - 6 * SUPERSAMPLE, height),
            fill=color,
            width=3 * SUPERSAMPLE,
        )
        x -= 40 * SUPERSAMPLE


def _nice_ticks(low, high, count=8):
    """Round tick values (1, 2 or 5 times a power of ten) inside ``[low, high]``."""
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 12))
        value += step
    return ticks
