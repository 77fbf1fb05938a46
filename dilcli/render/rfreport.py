"""Receptive-field results as text for people: titles, rows, tables, gridding advice.

What rf-table and rf-suggest show, apart from the arithmetic (:mod:`dilcli.core.receptive`)
and from option parsing (:mod:`dilcli.cli`): rows, columns, titles and advice. The one
printer is :mod:`dilcli.render.tables`. Nothing here imports numpy or Pillow.
"""

from __future__ import annotations

from dilcli.core import receptive
from dilcli.vocab import shape_text, size_text

RF_COLUMNS = (
    "layer",
    "kernel",
    "dilation",
    "stride",
    "span",
    "jump",
    "rf",
    "growth",
    "coverage",
    "params",
    "total_params",
    "hdc_m",
    "hdc",
)
RF_HEADERS = {"rf": "RF", "total_params": "total", "hdc_m": "M_i", "hdc": "HDC"}


def row_display(ndim):
    """Format one layer_stats row for people: 3x3, 67x67, percentages, the HDC reason."""
    from dilcli.core.receptive import share_text

    def size(n):
        return size_text(n, ndim)

    def display(row):
        shown = dict(row, kernel=size(row["kernel"]), rf=size(row["rf"]))
        if row["covered"] is not None:
            shown["coverage"] = share_text(row["covered"], row["rf"] ** ndim)
        shown["params"] = f"{row['params']:,}"
        shown["total_params"] = f"{row['total_params']:,}"
        return shown

    return display


def columns_for(rows, channels, fmt):
    """The columns each format shows: all for csv; for people, none that say nothing."""
    if fmt == "csv":
        return tuple(rows[0])
    columns = [c for c in RF_COLUMNS if channels or c != "total_params"]
    if fmt == "table" and all(row["stride"] == 1 for row in rows):
        columns = [c for c in columns if c not in ("stride", "jump")]
    return tuple(columns)


#: Longest list of per-layer values written out in titles; longer ones are cut.
LISTED = 12


def list_text(values, most=LISTED):
    """``1,2,4,8``; past ``most`` values the first and last few around ``...``."""
    values = [str(value) for value in values]
    if len(values) > most:
        values = [*values[: most - 4], "...", *values[-3:]]
    return ",".join(values)


def stack_title(layers, ndim):
    """The stack in words: kernel size, dilations (long lists cut), strides."""
    kernels = sorted({layer.kernel for layer in layers})
    size = (
        size_text(kernels[0], ndim)
        if len(kernels) == 1
        else "kernels " + list_text(x.kernel for x in layers)
    )
    title = f"{size} at dilations {list_text(x.dilation for x in layers)}"
    if any(layer.stride > 1 for layer in layers):
        title += f", strides {list_text(x.stride for x in layers)}"
    if len(layers) > LISTED:
        title += f" ({len(layers)} layers)"
    return title


def rf_command(layers, dilations, ndim):
    """The rf-table command for the same stack with other dilations."""
    kernels = {layer.kernel for layer in layers}
    kernel = str(kernels.pop()) if len(kernels) == 1 else ",".join(str(x.kernel) for x in layers)
    command = f"dilcli rf-table -k {kernel} -d {','.join(map(str, dilations))}"
    if any(layer.stride > 1 for layer in layers):
        command += f" -s {','.join(str(x.stride) for x in layers)}"
    return command + (" --1d" if ndim == 1 else "")


HDC_RULE = "HDC rule (Wang et al. 2018)"


def hdc_note(row, ndim):
    """The stderr line on the HDC rule for a layer_stats row ('' when it passes): the
    rule as what it is, beside the coverage that decides (never against it)."""
    reading, note = row["hdc"], row["hdc_note"]
    if reading == "fail":
        return f"{HDC_RULE}: fail, {note}"
    if reading not in ("not met", "n/a") or note == "mixed kernel sizes":
        return ""
    if row["covered"] is None:
        decides = "coverage decides"
    else:
        total = row["rf"] ** ndim
        share = receptive.share_text(row["covered"], total)
        found = "no holes" if row["covered"] == total else "holes"
        decides = f"coverage decides: {share}, {found}"
    if reading == "not met":  # docs/design.md, section 7: sufficient, not necessary
        return f"{HDC_RULE}: not met ({note}); a sufficient condition only, so {decides}"
    return f"{HDC_RULE}: does not apply ({note}); {decides}"


def hole_report(layers, rows, ndim):
    """Lines for stderr: the HDC verdict, the coverage of a gridded stack, and a
    hole-free schedule to use instead. Yields ``(text, is_warning)``."""
    last = rows[-1]
    note = hdc_note(last, ndim)
    if note:
        yield note, False
    if last["covered"] is None or last["coverage"] == 1:
        return
    field = last["rf"]
    size = size_text(field, ndim)
    what = "pixels" if ndim == 2 else "positions"
    total = field**ndim
    yield (
        (
            f"warning: holes (gridding): only {last['covered']} of {total} {what} "
            f"({receptive.share_text(last['covered'], total)}) of the {size} receptive field "
            "reach the output"
        ),
        True,
    )
    kernels = [layer.kernel for layer in layers]
    strides = [layer.stride for layer in layers]
    found = receptive.hole_free_schedules(kernels, field, strides=strides, count=1, effort=20_000)
    try:  # a field just past this one may pass receptive.MAX_FIELD: then no suggestion
        better = (
            found
            and receptive.receptive_fields(receptive.make_stack(found[0], kernels, strides))[-1]
        )
    except ValueError:
        return
    if found:
        better_size = size_text(better, ndim)
        yield (
            (
                f"  without holes, {len(layers)} layers reach {better_size}: "
                f"{rf_command(layers, found[0], ndim)}"
            ),
            False,
        )
        return
    spatial = [k for k in kernels if k > 1]
    yield f"  no hole-free schedule of {len(layers)} such layers reaches {size}", False
    if len(set(spatial)) == 1 and set(strides) == {1}:
        most = receptive.max_hole_free_field(spatial)
        try:
            depth, schedules = receptive.suggest_schedules(
                field, spatial[0], max_layers=len(spatial) + 8, count=1
            )
        except ValueError:
            return
        layers_needed = receptive.make_stack(schedules[0], kernels=spatial[0])
        kernel, most = (size_text(spatial[0]), size_text(most)) if ndim == 2 else (spatial[0], most)
        yield (
            (
                f"  ({len(spatial)} layers of {kernel} reach at most {most} without holes); "
                f"{depth} layers do: {rf_command(layers_needed, schedules[0], ndim)}"
            ),
            False,
        )


# --- networks (rf-table --network / --spec / --preset NAME) -----------------------------

#: The shares of RepLKNet's high-contribution area ratios.
ERF_SHARES = (0.2, 0.3, 0.5, 0.99)


def number(value):
    """An exact figure (int or Fraction) for JSON: int when whole, else float."""
    from fractions import Fraction

    if isinstance(value, Fraction):
        return value.numerator if value.denominator == 1 else float(value)
    return value


def number_text(value):
    """An exact figure for people: ``3``, ``-511.5``, ``1/3`` (when not a short decimal)."""
    from fractions import Fraction

    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    if 10**6 % value.denominator == 0:  # a short decimal: halves, quarters, tenths
        return f"{float(value):g}"
    return str(value)


def _pair(values, text=number_text):
    """One figure when both axes agree, ``h, w`` when they differ."""
    h, w = (text(v) for v in values)
    return h if h == w else f"{h}, {w}"


def network_json(info):
    """Everything rf-table found about a network, as one JSON-ready dict (numbers, not
    text): per axis ``{"height": ..., "width": ...}``."""

    def axes(values, convert=number):
        return (
            None if values is None else {"height": convert(values[0]), "width": convert(values[1])}
        )

    def figures(source):  # a network's, or one layer's
        return {name: axes(source[name]) for name in ("rf", "jump", "centre")}

    result = {
        "name": info["name"],
        "provenance": info["provenance"],
        "spec": info["spec"],
        **figures(info),
        "padding": axes(info["padding"]),
        "at": list(info["at"]),
        "box": None
        if info["box"] is None
        else dict(zip(("top", "bottom", "left", "right"), info["box"], strict=True)),
    }
    if "larger" in info:
        result["input_size"] = list(info["input_size"])
        result["larger_than_input"] = axes(info["larger"], bool)
    if "physical" in info:
        result["physical"] = {
            axis: {"value": float(value), "unit": unit}
            for axis, (value, unit) in zip(("height", "width"), info["physical"], strict=True)
        }
    coverage = info["hdc"]["coverage"]
    result["coverage"] = {key: None if v is None else float(v) for key, v in coverage.items()}
    hdc = info["hdc"]
    result["hdc"] = {
        "applies": hdc["applies"],
        "reason": hdc["reason"],
        "reading": None
        if hdc["reading"] is None
        else {a: list(r) for a, r in zip(("height", "width"), hdc["reading"], strict=True)},
        "hole_free": hdc["hole_free"],
        "conclusion": hdc["conclusion"],
    }
    if "verify" in info:
        report = info["verify"]
        result["verification"] = {
            "ok": report.ok,
            "checks": [
                {
                    "axis": c.axis,
                    "what": c.what,
                    "expected": _json_value(c.expected),
                    "measured": _json_value(c.measured),
                    "ok": c.ok,
                }
                for c in report.checks
            ],
        }
    if "effective" in info:
        result["effective"] = effective_json(info["effective"], info["weights"])
    result["layers"] = [
        {
            "item": row["path"],
            "layer": row["spec"],
            "kind": row["kind"],
            **figures(row),
        }
        for row in info["rows"]
    ]
    return result


def _json_value(value):
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return number(value)


def effective_json(erf, weights):
    """The effective receptive field's figures (not its map) for JSON."""
    return {
        "weights": weights,
        "centre": {"height": float(erf.centre[0]), "width": float(erf.centre[1])},
        "gaussian_fit": {
            "mean": {"height": erf.mean[0], "width": erf.mean[1]},
            "sigma": {"height": erf.sigma[0], "width": erf.sigma[1]},
        },
        "high_contribution_area": {
            f"{round(share * 100)}%": {
                "side": {"height": found["side"][0], "width": found["side"][1]},
                "area_ratio": found["area_ratio"],
                "share": found["share"],
            }
            for share, found in erf.ratios.items()
        },
    }


def network_title(info):
    """``name: provenance`` or the spec, for the table's title."""
    if info["name"]:
        return f"{info['name']}: {info['provenance']}" if info["provenance"] else info["name"]
    spec = info["spec"]
    if len(spec) > 60:  # whole items while they fit (the layer table lists them all)
        shown = ""
        for item in _top_level_items(spec):
            if len(shown) + len(item) > 56:
                break
            shown += item + ","
        spec = (shown or spec[:56]) + "..."
    return f"network {spec}"


def _top_level_items(spec):
    """The spec's items at depth 0 (commas inside groups and parentheses kept)."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(spec):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(spec[start:index])
            start = index + 1
    return [*items, spec[start:]]


#: Longest layer text in the terminal's layer table (groups are cut in the middle).
SHORT_LAYER = 48


def network_layer_rows(info, ndim, *, short=False):
    """``(rows, columns)`` of the per-layer table: one figure per column when the axes
    agree everywhere, else a column per axis. ``short``: long groups cut to
    :data:`SHORT_LAYER` characters (their branches have rows of their own)."""
    rows = info["rows"]
    same = all(row[key][0] == row[key][1] for row in rows for key in ("rf", "jump", "centre"))
    table = []
    for row in rows:
        text = row["spec"]
        if short and len(text) > SHORT_LAYER:
            text = text[: SHORT_LAYER - 12] + "..." + text[-9:]
        line = {"item": row["path"], "layer": text}
        if same:
            line["RF"] = size_text(number_text(row["rf"][0]), ndim)
            line["jump"] = number_text(row["jump"][0])
            line["centre"] = number_text(row["centre"][0])
        else:
            for a, axis in enumerate(("h", "w")):
                line[f"RF_{axis}"] = number_text(row["rf"][a])
            for a, axis in enumerate(("h", "w")):
                line[f"jump_{axis}"] = number_text(row["jump"][a])
            for a, axis in enumerate(("h", "w")):
                line[f"centre_{axis}"] = number_text(row["centre"][a])
        table.append(line)
    return table, tuple(table[0])


def network_figures(info, ndim):
    """``(rows, columns, notes)``: the network's figures for people, ``figure`` and
    ``value`` (or ``height`` and ``width`` when the axes differ, the figures of one value
    then in ``notes``, rows of ``figure`` and ``value``), every one that was computed."""
    per_axis = any(
        info[key][0] != info[key][1] for key in ("rf", "jump", "centre", "padding", "at")
    ) or (info["box"] is not None and info["box"][:2] != info["box"][2:])
    lines, notes = [], []

    def add(figure, values, text=number_text):
        if per_axis:
            lines.append({"figure": figure, "height": text(values[0]), "width": text(values[1])})
        elif ndim == 1:
            lines.append({"figure": figure, "value": text(values[0])})
        else:
            lines.append({"figure": figure, "value": _pair(values, text)})

    rf = info["rf"]
    if per_axis:
        add("receptive field", rf)
    else:
        lines.append({"figure": "receptive field", "value": size_text(number_text(rf[0]), ndim)})
    if "physical" in info:
        add("receptive field, physical", info["physical"], lambda v: f"{number_text(v[0])} {v[1]}")
    add("jump (output spacing)", info["jump"])
    at = info["at"] if ndim == 2 else info["at"][:1]
    where = ", ".join(map(str, at))
    add(
        f"centre of output ({where})",
        [c + a * j for c, a, j in zip(info["centre"], info["at"], info["jump"])],
    )
    add("effective padding", info["padding"])
    box = info["box"]
    if box is None:
        add(f"input box of output ({where})", ("reads no input",) * 2, str)
    else:
        add(
            f"input box of output ({where})",
            ((box[0], box[1]), (box[2], box[3])),
            lambda v: f"{v[0]}..{v[1]}",
        )
    if "larger" in info:
        size = shape_text(info["input_size"][:ndim])
        add(f"larger than the input ({size})", info["larger"], lambda v: "yes" if v else "no")
    coverage = info["hdc"]["coverage"]
    add("coverage", (coverage["height"], coverage["width"]), _share)
    if ndim == 2:
        area = coverage["area"]
        notes.append(
            {"figure": "coverage, area", "value": "not counted" if area is None else _share(area)}
        )
    notes.append({"figure": "holes and the HDC rule", "value": info["hdc"]["conclusion"]})
    if "verify" in info:
        report = info["verify"]
        agree = sum(check.ok for check in report.checks)
        verdict = f"{'yes' if report.ok else 'NO'}: {agree} of {len(report.checks)} checks agree"
        notes.append({"figure": "verified by impulses", "value": verdict})
    if not per_axis:  # one table: the effective field's figures come last
        lines, notes = lines + notes, []
    if "effective" in info:
        erf = info["effective"]
        notes.append({"figure": "ERF weights", "value": info["weights"]})
        add("ERF Gaussian fit: sigma", erf.sigma, lambda v: f"{v:.1f}")
        for share, found in erf.ratios.items():
            side = found["side"]
            text = f"{side[0]}x{side[1]} ({found['area_ratio']:.1%} of the box)"
            notes.append({"figure": f"ERF: square holding {share:.0%}", "value": text})
    if per_axis:
        return lines, ("figure", "height", "width"), notes
    return lines + notes, ("figure", "value"), []


def network_warnings(info, ndim):
    """Lines for stderr: holes in the output's box, a field larger than the input."""
    from fractions import Fraction

    field = network_figures(info, ndim)[0][0]  # the receptive field's row
    field = field.get("value") or shape_text((field["height"], field["width"]))
    where = ", ".join(map(str, info["at"] if ndim == 2 else info["at"][:1]))
    hdc = info["hdc"]
    if hdc["hole_free"] is False and info["box"] is not None:
        top, bottom, left, right = info["box"]
        coverage = hdc["coverage"]
        if ndim == 1:
            total, share = bottom - top + 1, Fraction(coverage["height"])
        else:
            total, share = (bottom - top + 1) * (right - left + 1), coverage["area"]
        what = "pixels" if ndim == 2 else "positions"
        if share is None:
            shares = ", ".join(_share(coverage[a]) for a in ("height", "width"))
            yield f"warning: holes: output ({where}) reads {shares} of its box per axis"
        else:
            reached = int(share * total)
            yield (
                f"warning: holes: only {reached} of {total} {what} ({_share(share)}) of the "
                f"{field} receptive field reach output ({where})"
            )
    if "larger" in info and any(info["larger"]):
        size = shape_text(info["input_size"][:ndim])
        yield (
            f"warning: the receptive field ({field}) is larger than the input ({size}): "
            "every output also sees padding"
        )


def _share(value):
    from fractions import Fraction

    if value is None:
        return "not computed"
    value = Fraction(value)
    return receptive.share_text(value.numerator, value.denominator)


def network_csv_rows(info):
    """Every figure of :func:`network_json` as flat ``figure, height, width`` rows (the
    per-layer figures as ``layer <item> <spec>: rf`` and so on)."""
    data = network_json(info)
    rows = []

    def walk(prefix, value):
        if (
            isinstance(value, dict)
            and set(value) == {"height", "width"}
            and not any(isinstance(v, dict) for v in value.values())
        ):
            rows.append({"figure": prefix, "height": value["height"], "width": value["width"]})
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, list) and prefix == "layers":
            for layer in value:
                for key in ("rf", "jump", "centre"):
                    walk(f"layer {layer['item']} {layer['layer']}: {key}", layer[key])
        elif isinstance(value, list) and prefix == "verification.checks":
            for check in value:
                rows.append(
                    {
                        "figure": f"verify {check['axis']} {check['what']}",
                        "height": check["ok"],
                        "width": "",
                    }
                )
        else:
            text = value if not isinstance(value, list) else ",".join(map(str, value))
            rows.append({"figure": prefix, "height": text, "width": ""})

    walk("", data)
    return rows
