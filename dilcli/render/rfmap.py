"""Pictures of receptive fields: which input pixels reach one output, layer by layer.

Drawn with Pillow from the exact footprints of :mod:`dilcli.receptive`: one panel per
layer for images (holes of a gridded stack stay visible, every pixel a cell), or, for
signals, the dependency diagram of one output sample (which positions each layer's
kernel uses at its dilation), as in the seed notebook's figure and WaveNet's.

Pictures are bounded (:data:`MAX_PICTURE_FIELD`, :data:`MAX_PANELS`,
:data:`MAX_PICTURE_PIXELS`, :data:`MAX_DIAGRAM_LINES`): past a bound a deep stack gets
fewer panels, or a ValueError naming the bound, never an unbounded image.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dilcli.core import receptive
from dilcli.render.rfreport import LISTED, list_text
from dilcli.vocab import shape_text, size_text

#: Widest receptive field drawn (a panel has at least one screen pixel per input pixel).
MAX_PICTURE_FIELD = 2048
#: Most panels in a picture: deeper stacks get panels for layers spread evenly.
MAX_PANELS = 16
#: Most pixels in a picture (75 MB as RGB): fewer panels, or a refused diagram, past it.
MAX_PICTURE_PIXELS = 25_000_000
#: Most lines in a --1d diagram (one per kernel tap of every sample reaching the output).
MAX_DIAGRAM_LINES = 200_000
LABEL_HEIGHT = 40
PANEL_SIZE = 300  # target panel side in pixels; cells are whole pixels
MAX_CELL = 24
MIN_PANEL_WIDTH = 170
COLUMNS = 4
GAP = 16
MARGIN = 16
EFFECTIVE_COLORMAP = "viridis"

BACKGROUND = (255, 255, 255)
OUTSIDE = (247, 247, 247)  # panel area beyond this layer's receptive field
REACHED = (31, 64, 122)
HOLE = (214, 222, 232)
OUTPUT = (214, 39, 40)
BOX = (110, 110, 110)
EDGE = (96, 132, 186)
UNREACHED_NODE = (175, 175, 175)
TEXT = (20, 20, 20)
MUTED_TEXT = (90, 90, 90)


# --- images: one panel per layer -------------------------------------------------------


def coverage_picture(layers, *, effective=False, kernels=None, absolute=False):
    """An RGB picture: for each layer, the input pixels reaching the centre output.

    ``effective`` colours reached pixels by the effective receptive field (impulse
    response of the stack up to that layer, uniform weights unless ``kernels`` are
    given; magnitude, scaled to each panel's peak); holes stay flat.

    The picture is bounded: a receptive field of at most :data:`MAX_PICTURE_FIELD`
    pixels, at most :data:`MAX_PANELS` panels and :data:`MAX_PICTURE_PIXELS` pixels in
    all. A deeper stack gets panels for layers spread evenly from the first to the last
    (the final footprint is always drawn), and the summary line says how many of its
    layers are shown. Raises ValueError for a field too wide to draw.
    """
    layers = receptive.as_layers(layers)
    fields = receptive.receptive_fields(layers)
    _check_size(fields[-1])
    positions = receptive.output_positions(layers)
    field, centre = fields[-1], positions[-1]
    cell = max(1, min(MAX_CELL, PANEL_SIZE // field))
    side = field * cell
    width = max(side, MIN_PANEL_WIDTH)
    fonts = _fonts()
    heading = f"{_describe(layers)}: input pixels reaching the centre output"
    if effective:
        heading = f"{_describe(layers)}: effective receptive field of the centre output"
    legend = _heat_legend(fonts) if effective else _legend(fonts)
    count = min(len(layers), MAX_PANELS)
    while count > 1 and _layout_size(count, width, side, heading, legend, fonts)[2] > (
        MAX_PICTURE_PIXELS
    ):
        count -= 1
    chosen = panel_layers(len(layers), count)
    wanted = set(chosen)

    masks = {}
    for index, mask in enumerate(receptive.iter_footprint_masks(layers)):
        if index in wanted:
            masks[index] = mask
    responses = None
    if effective:  # checked now, computed a panel at a time
        responses = receptive.iter_effective_responses(
            layers, kernels, ndim=2, absolute=absolute, wanted=wanted
        )

    final_mask = masks[len(layers) - 1]
    covered, total = final_mask.bit_count() ** 2, field * field
    share = receptive.share_text(covered, total)
    summary = f"receptive field {size_text(field)}: {covered} of {total} pixels reached ({share})"
    if covered < total:
        summary += f"; {total - covered} holes (gridding)"
    if len(chosen) < len(layers):
        summary += f"; panels for {len(chosen)} of the {len(layers)} layers"
    canvas, place = _layout(len(chosen), width, side, heading, summary, legend, fonts)
    draw = ImageDraw.Draw(canvas)
    for number, index in enumerate(chosen):
        layer, size, mask, position = layers[index], fields[index], masks[index], positions[index]
        offset = centre - position
        cells = _panel(field, offset, size, mask, responses and next(responses)[1])
        image = _upscale(cells, cell, grid=cell >= 6)
        panel = ImageDraw.Draw(image)
        low, high = offset * cell - 1, (offset + size) * cell
        panel.rectangle([low, low, high, high], outline=BOX)
        _mark_output(panel, centre, cell)
        reached = mask.bit_count() ** 2
        title = f"layer {index + 1}: {_size(layer.kernel)}, d={layer.dilation}"
        if layer.stride > 1:
            title += f", stride {layer.stride}"
        detail = f"RF {size_text(size)}, {receptive.share_text(reached, size * size)} reached"
        x, y = place(number)
        draw.text((x, y), title, fill=TEXT, font=fonts["label"])
        draw.text((x, y + 18), detail, fill=MUTED_TEXT, font=fonts["small"])
        canvas.paste(image, (x + (width - image.width) // 2, y + LABEL_HEIGHT))
    return canvas


def panel_layers(count, panels):
    """Which of ``count`` layers get one of ``panels`` panels: all when they fit, else
    spread evenly from the first to the last (0-based, increasing)."""
    if panels >= count:
        return list(range(count))
    if panels <= 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (panels - 1)) for i in range(panels)})


def panel_cells(layers, index, *, effective=False, kernels=None, absolute=False):
    """One RGB uint8 cell per input pixel of the whole stack's box, for layer ``index``.

    The box of layers ``0..index`` sits where the output pixel aligns with the final
    box: :data:`REACHED` or :data:`HOLE` inside it (or a colour-mapped weight with
    ``effective``), :data:`OUTSIDE` beyond it. Holes come from the exact footprint:
    a reached pixel whose weight is 0 (cancelled, or too small for a float past some
    hundred layers) takes the bottom colour of the scale, not the hole colour.
    """
    layers = receptive.as_layers(layers)
    stack = layers[: index + 1]
    field = receptive.receptive_fields(layers)[-1]
    _check_size(field)
    size = receptive.receptive_fields(stack)[-1]
    weights = None
    if effective:
        chosen = None if kernels is None else kernels[: index + 1]
        weights = receptive.effective_receptive_field(stack, chosen, ndim=2, absolute=absolute)
    offset = receptive.output_positions(layers)[-1] - receptive.output_positions(stack)[-1]
    return _panel(field, offset, size, receptive.footprint_mask(stack), weights)


def _panel(field, offset, size, mask, weights=None):
    """The cells of one panel: the ``size`` box of a layer at ``offset`` in the final
    ``field``; reached / hole from the 1-D footprint ``mask``, reached pixels coloured
    by ``weights`` when given."""
    row = np.array([mask >> i & 1 for i in range(size)], dtype=bool)
    box = np.logical_and.outer(row, row)
    if weights is not None:
        weights = np.abs(weights)
        peak = weights.max()
        pixels = _colormap(weights / peak if peak > 0 else weights)
    else:
        pixels = np.empty((size, size, 3), dtype=np.uint8)
        pixels[box] = REACHED
    pixels[~box] = HOLE
    canvas = np.empty((field, field, 3), dtype=np.uint8)
    canvas[:] = OUTSIDE
    canvas[offset : offset + size, offset : offset + size] = pixels
    return canvas


def _upscale(pixels, cell, *, grid):
    big = np.repeat(np.repeat(pixels, cell, axis=0), cell, axis=1)
    if grid:
        big[::cell, :] = BACKGROUND
        big[:, ::cell] = BACKGROUND
    return Image.fromarray(big)


def _mark_output(draw, centre, cell):
    """A red square around the output pixel, visible at any cell size."""
    pad = max(1, cell // 6, (9 - cell) // 2)  # at least 9 pixels across
    low = centre * cell - pad
    high = (centre + 1) * cell - 1 + pad
    draw.rectangle([low, low, high, high], outline=OUTPUT, width=max(1, min(3, cell // 5)))


def _colormap(values01):
    from dilcli.render.display import colormap

    return (colormap(values01, EFFECTIVE_COLORMAP, levels=256) * 255).round().astype(np.uint8)


def _legend(fonts):
    items = [
        (REACHED, "reaches the output"),
        (HOLE, "hole: never reaches it"),
        (None, "the output pixel"),
    ]
    return _swatches(items, fonts)


def _heat_legend(fonts):
    bar_width, height = 160, 14
    ramp = _colormap(np.linspace(0, 1, bar_width))[None].repeat(height, axis=0)
    parts = [
        ("image", Image.fromarray(ramp)),
        ("text", "weight on the output, 0 to the panel's peak"),
        ("swatch", HOLE),
        ("text", "hole: never reaches it"),
        ("swatch", None),
        ("text", "the output pixel"),
    ]
    return _row_of(parts, fonts)


def _swatches(items, fonts):
    parts = []
    for colour, text in items:
        parts += [("swatch", colour), ("text", text)]
    return _row_of(parts, fonts)


def _row_of(parts, fonts):
    """A one-line legend image from swatches, images and text."""
    height, gap = 20, 8
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = []
    for kind, value in parts:
        if kind == "text":
            widths.append(int(measure.textlength(value, font=fonts["small"])) + 2 * gap)
        elif kind == "image":
            widths.append(value.width + gap)
        else:
            widths.append(height + gap // 2)
    image = Image.new("RGB", (sum(widths), height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    x = 0
    for (kind, value), width in zip(parts, widths, strict=True):
        if kind == "text":
            draw.text(
                (x + gap // 2, height / 2), value, fill=MUTED_TEXT, font=fonts["small"], anchor="lm"
            )
        elif kind == "image":
            image.paste(value, (x, (height - value.height) // 2))
        elif value is None:
            draw.rectangle([x + 2, 2, x + height - 3, height - 3], outline=OUTPUT, width=2)
        else:
            draw.rectangle([x + 2, 2, x + height - 3, height - 3], fill=value)
        x += width
    return image


def _layout_size(count, width, side, heading, legend, fonts):
    """``(columns, header, pixels, (total_width, total_height))`` of ``count`` panels."""
    columns = min(COLUMNS, count)
    rows = math.ceil(count / columns)
    header = 72 + legend.height
    total_width = max(
        2 * MARGIN + columns * width + (columns - 1) * GAP,
        2 * MARGIN + legend.width,
        2 * MARGIN + int(_text_width(heading, fonts["title"])),
    )
    total_height = header + rows * (LABEL_HEIGHT + side + GAP) + MARGIN
    return columns, header, total_width * total_height, (total_width, total_height)


def _layout(count, width, side, heading, summary, legend, fonts):
    """A canvas for ``count`` panels in rows of up to COLUMNS, under a heading, a summary
    line and a legend; and ``place(number)``: where panel ``number``'s title goes."""
    columns, header, _, (total_width, total_height) = _layout_size(
        count, width, side, heading, legend, fonts
    )
    # the summary line is the longest on a network map (its box): it was cut at the edge
    total_width = max(total_width, 2 * MARGIN + math.ceil(_text_width(summary, fonts["small"])))
    canvas = Image.new("RGB", (total_width, total_height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, 14), heading, fill=TEXT, font=fonts["title"])
    draw.text((MARGIN, 38), summary, fill=MUTED_TEXT, font=fonts["small"])
    canvas.paste(legend, (MARGIN, 60))

    def place(number):
        row, column = divmod(number, columns)
        return MARGIN + column * (width + GAP), header + row * (LABEL_HEIGHT + side + GAP)

    return canvas, place


# --- signals: the dependency diagram of one output sample ------------------------------


def signal_picture(layers, *, causal=False, effective=False, kernels=None, absolute=False):
    """An RGB diagram: input at the bottom, each layer above, one output at the top.

    Lines join every sample that reaches the output to the positions its layer's
    kernel uses at that dilation; filled dots reach the output, hollow ones do not.
    With ``effective``, bars under the input show each position's weight on the output.

    Raises ValueError past :data:`MAX_PICTURE_FIELD` positions, a diagram of more than
    :data:`MAX_PICTURE_PIXELS` pixels (about 100 layers at the widest field) or more
    than :data:`MAX_DIAGRAM_LINES` lines; nothing is drawn before these checks.
    """
    layers = receptive.as_layers(layers)
    fields = receptive.receptive_fields(layers)
    field = fields[-1]
    _check_size(field)
    jumps = [1, *receptive.jumps(layers)]
    centre = receptive.output_positions(layers, causal=causal)[-1]
    fonts = _fonts()

    spacing = max(3, min(36, 1400 // field))
    radius = max(1.0, min(7.0, spacing * 0.3))
    row_gap = 64 if len(layers) <= 12 else 40
    label_width = 150
    top = 96
    bars = 70 if effective else 0
    width = label_width + field * spacing + 2 * MARGIN
    height = top + len(layers) * row_gap + 40 + bars + MARGIN
    padding = " (causal)" if causal else ""
    heading = f"{_describe(layers, one_d=True)}{padding}: inputs reaching one output"
    width = max(width, 2 * MARGIN + int(_text_width(heading, fonts["title"])))
    if width * height > MAX_PICTURE_PIXELS:
        raise ValueError(
            f"a diagram of {len(layers)} layers would be {width}x{height} pixels (at most "
            f"{MAX_PICTURE_PIXELS // 10**6} megapixels); 'dilcli rf-table --1d' reports it"
        )
    lines = diagram_lines(layers, causal=causal)
    if lines > MAX_DIAGRAM_LINES:
        raise ValueError(
            f"a diagram of these layers would draw {lines} lines (at most "
            f"{MAX_DIAGRAM_LINES}); 'dilcli rf-table --1d' reports it in numbers"
        )
    if effective:  # checked before drawing
        responses = receptive.iter_effective_responses(layers, kernels, ndim=1, absolute=absolute)

    reached, edges = signal_reach(layers, causal=causal)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    def x_of(position):
        return label_width + MARGIN + position * spacing + spacing / 2

    def y_of(row):
        return top + (len(layers) - row) * row_gap

    count = len(reached[0])
    draw.text((MARGIN, 14), heading, fill=TEXT, font=fonts["title"])
    share = receptive.share_text(count, field)
    summary = f"receptive field {field}: {count} of {field} positions reached ({share})"
    if count < field:
        summary += f"; {field - count} holes (gridding)"
    draw.text((MARGIN, 38), summary, fill=MUTED_TEXT, font=fonts["small"])
    legend = _swatches(
        [(REACHED, "reaches the output"), (UNREACHED_NODE, "does not"), (OUTPUT, "the output")],
        fonts,
    )
    canvas.paste(legend, (MARGIN, 58))

    line_width = 2 if spacing >= 12 else 1
    for row, node, source in edges:
        draw.line(
            [(x_of(node), y_of(row)), (x_of(source), y_of(row - 1))], fill=EDGE, width=line_width
        )
    for row in range(len(layers) + 1):
        y = y_of(row)
        label = "input" if row == 0 else f"layer {row}: d={layers[row - 1].dilation}"
        if row == len(layers):
            label = f"output (layer {row}: d={layers[row - 1].dilation})"
        draw.text((MARGIN, y), label, fill=TEXT, font=fonts["small"], anchor="lm")
        for position in range(centre % jumps[row], field, jumps[row]):
            box = [x_of(position) - radius, y - radius, x_of(position) + radius, y + radius]
            if position in reached[row]:
                colour = OUTPUT if row == len(layers) else REACHED
                draw.ellipse(box, fill=colour)
            elif radius >= 2:
                draw.ellipse(box, outline=UNREACHED_NODE)
            else:
                draw.point((x_of(position), y), fill=UNREACHED_NODE)
    base = y_of(0) + 16
    ticks = {0: f"{-centre:+d}", field - 1: f"{field - 1 - centre:+d}", centre: "0"}
    for position, text in ticks.items():
        draw.text((x_of(position), base), text, fill=MUTED_TEXT, font=fonts["small"], anchor="mt")
    if effective:
        ((_, weights),) = responses
        weights = np.abs(weights)
        peak = weights.max() or 1.0
        floor = base + 18 + bars - 8
        draw.text(
            (MARGIN, floor - bars / 2), "effective RF", fill=TEXT, font=fonts["small"], anchor="lm"
        )
        bar = max(1, int(spacing * 0.7))
        for position, value in enumerate(weights):
            if value > 0:
                x = x_of(position)
                draw.rectangle(
                    [x - bar / 2, floor - (bars - 12) * value / peak, x + bar / 2, floor],
                    fill=REACHED,
                )
    return canvas


def signal_reach(layers, *, causal=False):
    """Samples reaching the output, row by row (0: input), and the lines joining them.

    Returns ``(reached, edges)``: ``reached[row]`` is a set of positions in the
    receptive-field box; ``edges`` are ``(row, position, position one row down)``.
    """
    layers = receptive.as_layers(layers)
    positions = [0, *receptive.output_positions(layers, causal=causal)]
    steps = receptive.steps(layers)
    reached = [set() for _ in range(len(layers) + 1)]
    reached[-1] = {positions[-1]}
    edges = []
    for row in range(len(layers), 0, -1):
        layer, before = layers[row - 1], positions[row] - positions[row - 1]
        for node in sorted(reached[row]):
            for tap in range(layer.kernel):
                source = node - before + tap * steps[row - 1]
                reached[row - 1].add(source)
                edges.append((row, node, source))
    return reached, edges


def diagram_lines(layers, *, causal=False):
    """How many lines :func:`signal_reach` finds (one per tap of every reached sample),
    counted with bit sets, without listing them."""
    layers = receptive.as_layers(layers)
    positions = [0, *receptive.output_positions(layers, causal=causal)]
    steps = receptive.steps(layers)
    reached, lines = 1 << positions[-1], 0
    for row in range(len(layers), 0, -1):
        kernel = layers[row - 1].kernel
        lines += reached.bit_count() * kernel
        before = positions[row] - positions[row - 1]
        reached = receptive._shift_union(reached >> before, steps[row - 1], kernel)
    return lines


# --- shared helpers ----------------------------------------------------------------------


def save_png(image, path):
    """Write ``image`` (a Pillow picture) as PNG with dilcli's one encoder, atomically."""
    from dilcli.io.png import save_pixels

    save_pixels(path, np.asarray(image.convert("RGB")))


def _check_size(field):
    if field > MAX_PICTURE_FIELD:
        raise ValueError(
            f"the receptive field ({field}) is too wide to draw (at most "
            f"{MAX_PICTURE_FIELD}); 'dilcli rf-table' reports it in numbers"
        )


def _fonts():
    return {
        "title": ImageFont.load_default(size=17),
        "label": ImageFont.load_default(size=14),
        "small": ImageFont.load_default(size=12),
    }


def _text_width(text, font):
    return ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font)


def _size(kernel, one_d=False):
    return size_text(kernel, 1 if one_d else 2)


def _describe(layers, one_d=False):
    """The stack in words; long lists cut in the middle (the picture's width follows)."""
    kernels = {layer.kernel for layer in layers}
    dilations = list_text(layer.dilation for layer in layers)
    if len(kernels) == 1:
        what = f"kernel {layers[0].kernel}" if one_d else f"{_size(layers[0].kernel)} layers"
    else:
        what = "kernels " + list_text(layer.kernel for layer in layers)
    text = f"{what} at dilations {dilations}"
    if any(layer.stride > 1 for layer in layers):
        text += ", strides " + list_text(layer.stride for layer in layers)
    if len(layers) > LISTED:
        text += f" ({len(layers)} layers)"
    return text


# --- networks: the footprint and the effective field of one output ---------------------

#: Outline colours of RepLKNet's squares (20, 30, 50, 99 % of the effective field).
SHARE_COLOURS = ((90, 215, 255), (255, 200, 60), (255, 140, 60), (240, 80, 80))
#: The effective field's colours run from 0 to this percentile of its non-zero weights.
ERF_PERCENTILE = 99.5


def network_picture(network, *, at=(0, 0), effective=None, title=""):
    """An RGB picture of one output of a network: the input pixels it reads (its exact
    footprint within its box, holes pale) and, with ``effective`` (an
    :class:`~dilcli.core.network.EffectiveField` and its weights' label), the effective
    receptive field as a heat map with RepLKNet's squares holding 20/30/50/99 % of it
    and the Gaussian fit's 1-sigma ellipse.

    Raises ValueError past :data:`MAX_PICTURE_FIELD` pixels a side.
    """
    from dilcli.core import network as net
    from dilcli.core.receptive import share_text

    fields = network.field
    sizes = [math.ceil(field.size) for field in fields]
    for size in sizes:
        _check_size(size)
    got = net.footprint_2d(network, at)
    if got is None:
        raise ValueError(f"output {at} reads no input")
    top, left, mask = got
    box = net.box(network, *at)
    height, width = box[1] - box[0] + 1, box[3] - box[2] + 1
    cell = max(1, min(MAX_CELL, PANEL_SIZE // max(height, width)))
    fonts = _fonts()
    name = title or network.name or _short_spec(network.spec())
    where = ", ".join(map(str, at))
    heading = f"{name}: the input pixels output ({where}) reads"
    reached, total = int(mask.sum()), height * width
    share = share_text(reached, total)
    size = shape_text((height, width))
    summary = f"receptive field {size}, box {box[0]}..{box[1]} x {box[2]}..{box[3]}: "
    summary += f"{reached} of {total} pixels reached ({share})"
    if reached < total:
        summary += f"; {total - reached} holes"
    count = 2 if effective else 1
    legend = _network_legend(fonts, effective is not None)
    panel_width = max(width * cell, MIN_PANEL_WIDTH + 60)
    canvas, place = _layout(count, panel_width, height * cell, heading, summary, legend, fonts)
    draw = ImageDraw.Draw(canvas)
    cells = np.empty((height, width, 3), dtype=np.uint8)
    cells[:] = HOLE
    rows = slice(top - box[0], top - box[0] + mask.shape[0])
    columns = slice(left - box[2], left - box[2] + mask.shape[1])
    cells[rows, columns][mask] = REACHED
    centre = [float(f.window(o)[0] + (f.size - 1) / 2) for f, o in zip(fields, at)]
    centre_cell = (math.floor(centre[0]) - box[0], math.floor(centre[1]) - box[2])
    panels = [("footprint", f"RF {size}, {share} reached", cells, None)]
    if effective:
        erf, label = effective
        heat = np.zeros((height, width))
        r0, c0 = erf.top - box[0], erf.left - box[2]
        heat[r0 : r0 + erf.map.shape[0], c0 : c0 + erf.map.shape[1]] = erf.map
        # One sharp peak would leave the rest dark: scale to a high percentile instead.
        positive = heat[heat > 0]
        top = np.percentile(positive, ERF_PERCENTILE) if positive.size else 0
        pixels = _colormap(np.clip(heat / top, 0, 1) if top > 0 else heat)
        pixels[cells[..., 0] == HOLE[0]] = HOLE
        sigma = ", ".join(f"{s:.1f}" for s in erf.sigma)
        detail = f"{label} weights; Gaussian fit sigma {sigma} px"
        panels.append(("effective receptive field", detail, pixels, erf))
    for number, (caption, detail, pixels, erf) in enumerate(panels):
        image = _upscale(pixels, cell, grid=cell >= 6)
        panel = ImageDraw.Draw(image)
        if erf is not None:
            _draw_shares(panel, erf, box, cell, fonts)
        _mark_cell(panel, centre_cell, cell)
        x, y = place(number)
        draw.text((x, y), caption, fill=TEXT, font=fonts["label"])
        draw.text((x, y + 18), detail, fill=MUTED_TEXT, font=fonts["small"])
        canvas.paste(image, (x, y + LABEL_HEIGHT))
    return canvas


def _short_spec(spec, most=70):
    return spec if len(spec) <= most else spec[: most - 13] + "..." + spec[-10:]


def _mark_cell(draw, where, cell):
    """A red square around the cell (row, column) of the output's centre."""
    pad = max(1, cell // 6, (9 - cell) // 2)
    row, column = where
    draw.rectangle(
        [
            column * cell - pad,
            row * cell - pad,
            (column + 1) * cell - 1 + pad,
            (row + 1) * cell - 1 + pad,
        ],
        outline=OUTPUT,
        width=max(1, min(3, cell // 5)),
    )


def _draw_shares(draw, erf, box, cell, fonts):
    """RepLKNet's centred squares (one outline per share) and the 1-sigma ellipse."""
    for index, (colour, (share, found)) in enumerate(
        zip(SHARE_COLOURS, erf.ratios.items(), strict=False)
    ):
        side_h, side_w = found["side"]
        centre_row = float(erf.centre[0]) - box[0]
        centre_col = float(erf.centre[1]) - box[2]
        low_r = math.floor(centre_row - (side_h - 1) / 2)
        low_c = math.floor(centre_col - (side_w - 1) / 2)
        rect = [
            low_c * cell,
            low_r * cell,
            (low_c + side_w) * cell - 1,
            (low_r + side_h) * cell - 1,
        ]
        draw.rectangle(rect, outline=colour, width=2)
        # A tag in the square's colour on its corner, apart when squares coincide.
        text = f"{share:.0%}"
        x, y = rect[0] + 34 * index, rect[1]
        tag = draw.textbbox((x + 3, y + 1), text, font=fonts["small"])
        draw.rectangle([x, y, tag[2] + 3, tag[3] + 2], fill=colour)
        draw.text((x + 3, y + 1), text, fill=TEXT, font=fonts["small"])
    mean_r, mean_c = erf.mean[0] - box[0] + 0.5, erf.mean[1] - box[2] + 0.5
    sigma_r, sigma_c = erf.sigma
    draw.ellipse(
        [
            (mean_c - sigma_c) * cell,
            (mean_r - sigma_r) * cell,
            (mean_c + sigma_c) * cell,
            (mean_r + sigma_r) * cell,
        ],
        outline=(0, 0, 0),
        width=1,
    )


def _network_legend(fonts, effective):
    parts = [
        ("swatch", REACHED),
        ("text", "reaches the output"),
        ("swatch", HOLE),
        ("text", "hole: never reaches it"),
        ("swatch", None),
        ("text", "the output's centre"),
    ]
    if effective:
        ramp = _colormap(np.linspace(0, 1, 120))[None].repeat(14, axis=0)
        parts += [
            ("image", Image.fromarray(ramp)),
            ("text", "weight, 0 to its 99.5th percentile; squares hold 20/30/50/99 % of it"),
        ]
    return _row_of(parts, fonts)
