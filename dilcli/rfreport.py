"""Receptive-field results as text for people: titles, rows, tables, gridding advice.

What rf-table and rf-suggest print, apart from the arithmetic (:mod:`dilcli.receptive`)
and from option parsing (:mod:`dilcli.cli`). Nothing here imports numpy or Pillow.
"""

from __future__ import annotations

import sys

from dilcli import receptive

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


def print_rows(rows, columns, fmt, *, title=None, display=None, headers=None):
    """Rows as json/csv/markdown (:func:`dilcli.tables.render_rows`), or for people.

    ``display`` formats a row for people (markdown and tables), ``headers`` renames
    columns in tables. People get a rich table on a terminal, plain aligned columns
    in a pipe; neither truncates a number to fit.
    """
    from dilcli.tables import render_rows  # json, csv: not needed for people's tables

    if fmt in ("json", "csv"):
        sys.stdout.write(render_rows(rows, columns, fmt))
        return
    shown = [display(row) for row in rows] if display else rows
    if fmt == "markdown":
        if title:
            print(f"**{title}**\n")
        sys.stdout.write(render_rows(shown, columns, fmt))
        return
    cells = [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in shown]
    names = [(headers or {}).get(c, c) for c in columns]
    if not sys.stdout.isatty():
        # A pipe or a file: plain aligned columns, no box drawing, and no rich to
        # import (a third of the command's time).
        widths = [max(len(n), *(len(line[i]) for line in cells)) for i, n in enumerate(names)]
        if title:
            print(title)
        for line in (names, ["-" * w for w in widths], *cells):
            print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for line in cells:
        table.add_row(*line)
    # Never truncate a number to fit a narrow terminal: let long lines wrap instead.
    needed = sum(max(len(n), *(len(line[i]) for line in cells)) + 2 for i, n in enumerate(names))
    console = Console(highlight=False)
    if needed > console.width:
        console = Console(highlight=False, width=needed)
    console.print(table)


def row_display(ndim):
    """Format one layer_stats row for people: 3x3, 67x67, percentages, the HDC reason."""
    from dilcli.receptive import share_text

    def size(n):
        return f"{n}x{n}" if ndim == 2 else str(n)

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


def stack_title(layers, ndim):
    kernels = sorted({layer.kernel for layer in layers})
    size = (
        "x".join([str(kernels[0])] * ndim)
        if len(kernels) == 1
        else "kernels " + ",".join(str(x.kernel) for x in layers)
    )
    title = f"{size} at dilations {','.join(str(x.dilation) for x in layers)}"
    if any(layer.stride > 1 for layer in layers):
        title += f", strides {','.join(str(x.stride) for x in layers)}"
    return title


def rf_command(layers, dilations, ndim):
    """The rf-table command for the same stack with other dilations."""
    kernels = {layer.kernel for layer in layers}
    kernel = str(kernels.pop()) if len(kernels) == 1 else ",".join(str(x.kernel) for x in layers)
    command = f"dilcli rf-table -k {kernel} -d {','.join(map(str, dilations))}"
    if any(layer.stride > 1 for layer in layers):
        command += f" -s {','.join(str(x.stride) for x in layers)}"
    return command + (" --1d" if ndim == 1 else "")


def hole_report(layers, rows, ndim):
    """Lines for stderr: the HDC verdict, the coverage of a gridded stack, and a
    hole-free schedule to use instead. Yields ``(text, is_warning)``."""
    last = rows[-1]
    if last["hdc"] == "fail":
        yield f"HDC rule (Wang et al. 2018): fail, {last['hdc_note']}", False
    if last["covered"] is None or last["coverage"] == 1:
        return
    field = last["rf"]
    size = f"{field}x{field}" if ndim == 2 else str(field)
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
    if found:
        better = receptive.layer_stats(receptive.make_stack(found[0], kernels, strides), ndim=ndim)[
            -1
        ]["rf"]
        better_size = f"{better}x{better}" if ndim == 2 else str(better)
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
