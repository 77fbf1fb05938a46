"""Every table dilcli prints: for the terminal (rich, or plain aligned columns in a
pipe), for machines (JSON, CSV, Markdown) and the plain stderr tables the file commands
print before they run.

One list of row dictionaries feeds every format, so they cannot disagree.
"""

from __future__ import annotations

import sys

#: Tables longer than this print as plain aligned columns even on a terminal: rich
#: would hold (and take seconds to lay out) every cell of every row.
MAX_RICH_ROWS = 1000


def format_weights(weights):
    """Weights as short text rows: integers plain, others as small fractions if exact."""
    rows = [weights] if not isinstance(weights[0], (tuple, list)) else weights
    cells = [[_weight_text(float(w)) for w in row] for row in rows]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(" ".join(c.rjust(width) for c in row) for row in cells)


def _weight_text(value):
    if value.is_integer():
        return f"{value:g}"
    from fractions import Fraction

    fraction = Fraction(value).limit_denominator(1024)
    return f"{fraction}" if abs(float(fraction) - value) < 1e-12 else f"{value:.4g}"


def kernel_table(kernels):
    """Print ``(name, description, parts)`` of named kernels: a rich table on a
    terminal, plain text in a pipe (without importing rich: most of the start-up)."""
    import sys

    entries = []
    for name, description, parts in kernels:
        weights = format_weights(parts[0])
        if len(parts) == 2:
            weights = f"x:\n{weights}\ny:\n{format_weights(parts[1])}"
        entries.append((name, weights, description))
    if not sys.stdout.isatty():
        for name, weights, description in entries:
            print(f"{name}: {description}")
            print("\n".join("    " + line for line in weights.splitlines()))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Named kernels", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("weights", no_wrap=True)
    table.add_column("what it does")
    for name, weights, description in entries:
        table.add_row(name, weights, Text(description))  # Text: no markup in x[i+d]
    Console().print(table)


def render_rows(rows, columns, fmt, *, title=None):
    """``rows`` (dicts) as json/csv/markdown text, or printed for people (the text is
    then ``""``): :func:`print_rows` without a display rule."""
    if fmt in ("json", "csv", "markdown"):
        return "".join(iter_rendered_rows(rows, columns, fmt))
    print_rows(rows, columns, "table", title=title)
    return ""


def print_rows(rows, columns, fmt, *, title=None, display=None, headers=None, left=()):
    """Rows on stdout as json/csv/markdown (:func:`iter_rendered_rows`), or for people.

    ``display`` formats a row for people (markdown and tables), ``headers`` renames
    columns in tables, whose cells are right-aligned but for the ``left`` columns
    (text). People get a rich table on a terminal (up to
    :data:`MAX_RICH_ROWS` rows), plain aligned columns in a pipe or for longer tables;
    neither truncates a number to fit. Text is written a row at a time.
    """
    if fmt in ("json", "csv"):
        for text in iter_rendered_rows(rows, columns, fmt):
            sys.stdout.write(text)
        return

    def shown():
        return (display(row) for row in rows) if display else iter(rows)

    if fmt == "markdown":
        if title:
            print(f"**{title}**\n")
        for text in iter_rendered_rows(shown(), columns, fmt):
            sys.stdout.write(text)
        return

    def cells():
        for row in shown():
            yield ["" if row.get(c) is None else str(row.get(c)) for c in columns]

    names = [(headers or {}).get(c, c) for c in columns]
    widths = [len(name) for name in names]
    for line in cells():  # a first pass for the widths: no copy of every cell is kept
        widths = [max(width, len(cell)) for width, cell in zip(widths, line, strict=True)]
    if not sys.stdout.isatty() or len(rows) > MAX_RICH_ROWS:
        # A pipe or a file: plain aligned columns, no box drawing, and no rich to
        # import (a third of the command's time).
        if title:
            print(title)
        aligned = [column in left for column in columns]
        for line in plain_lines(names, cells(), widths=widths, indent="", rule=True, left=aligned):
            print(line)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column, name in zip(columns, names, strict=True):
        table.add_column(name, justify="left" if column in left else "right", no_wrap=True)
    for line in cells():
        table.add_row(*line)
    # Never truncate a number to fit a narrow terminal: let long lines wrap instead.
    # markup=False: cells are text, never rich markup ('[conv3|pool2]+' is a network).
    needed = sum(width + 2 for width in widths)
    console = Console(highlight=False, markup=False)
    if needed > console.width:
        console = Console(highlight=False, markup=False, width=needed)
    console.print(table)


def plain_lines(names, rows, *, widths=None, indent="  ", rule=False, left=None):
    """A plain text table, a line at a time: the header ``names``, a rule of dashes if
    asked, then each row of cells, every cell right-aligned to its column's width
    (``widths``, default the header's; a width of 0 leaves the cell as it is) and
    joined by two spaces; columns marked True in ``left`` are left-aligned instead (and
    the lines lose their trailing spaces). The stderr tables of ``context`` and
    ``signal --stack`` use it too.

    >>> list(plain_lines(["layer", "dilation"], [[1, 2]]))
    ['  layer  dilation', '      1         2']
    """
    widths = list(widths) if widths is not None else [len(name) for name in names]
    lines = [names, ["-" * width for width in widths]] if rule else [names]
    left = list(left) if left is not None else [False] * len(widths)
    for line in (*lines, *rows):
        text = indent + "  ".join(
            str(cell).ljust(width) if to_left else str(cell).rjust(width)
            for cell, width, to_left in zip(line, widths, left, strict=True)
        )
        yield text.rstrip() if any(left) else text


def iter_rendered_rows(rows, columns, fmt):
    """:func:`render_rows` text for json, csv or markdown, a row at a time: memory for
    one row, not for the whole text (the same text, joined)."""
    if fmt == "json":
        # json.dumps(rows, indent=2) builds the whole text from millions of pieces in
        # pure Python: each row alone, indented, gives the same text.
        first = True
        for row in rows:
            yield ("[\n  " if first else ",\n  ") + _json_row(row)
            first = False
        yield "[]\n" if first else "\n]\n"
    elif fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            if buffer.tell() > 1 << 16:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    elif fmt == "markdown":
        yield "| " + " | ".join(columns) + " |\n" + "|" + "---|" * len(columns) + "\n"
        for row in rows:
            yield "| " + " | ".join(_cell(row.get(c)) for c in columns) + " |\n"
    else:
        raise ValueError(f"no text format {fmt!r}: json, csv or markdown")


def _json_row(row):
    """``json.dumps(row, indent=2)`` indented one level more; flat rows of str keys and
    plain values (most rows) without json's pure-Python indenting encoder."""
    import json

    items = []
    if type(row) is dict:
        for key, value in row.items():
            kind = type(value)
            if type(key) is not str:
                break
            if kind is str:
                text = json.encoder.encode_basestring_ascii(value)
            elif kind is int:
                text = int.__repr__(value)
            elif kind is float and value - value == 0:  # finite
                text = float.__repr__(value)
            elif value is None or kind is bool:
                text = json.dumps(value)
            else:
                break
            items.append(f"{json.encoder.encode_basestring_ascii(key)}: {text}")
        else:
            return "{\n    " + ",\n    ".join(items) + "\n  }" if items else "{}"
    return json.dumps(row, indent=2).replace("\n", "\n  ")


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
