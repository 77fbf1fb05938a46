"""Receptive-field results as text for people: titles, rows, tables, gridding advice.

What rf-table and rf-suggest show, apart from the arithmetic (:mod:`dilcli.core.receptive`)
and from option parsing (:mod:`dilcli.cli`): rows, columns, titles and advice. The one
printer is :mod:`dilcli.render.tables`. Nothing here imports numpy or Pillow.
"""

from __future__ import annotations

from dilcli.core import receptive
from dilcli.vocab import size_text

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
        "x".join([str(kernels[0])] * ndim)
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
        kernel, most = (
            (f"{spatial[0]}x{spatial[0]}", f"{most}x{most}") if ndim == 2 else (spatial[0], most)
        )
        yield (
            (
                f"  ({len(spatial)} layers of {kernel} reach at most {most} without holes); "
                f"{depth} layers do: {rf_command(layers_needed, schedules[0], ndim)}"
            ),
            False,
        )
