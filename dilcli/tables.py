"""Tables for the terminal (rich) and for machines (JSON, CSV, Markdown).

One list of row dictionaries feeds every format, so they cannot disagree.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np


def format_weights(weights):
    """Weights as short text rows: integers plain, others to 4 significant digits."""
    weights = np.atleast_2d(weights)
    cells = [[f"{w:g}" if float(w).is_integer() else f"{w:.4g}" for w in row] for row in weights]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(" ".join(c.rjust(width) for c in row) for row in cells)


def kernel_table(kernels):
    """Print the named kernels with their weights as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Named kernels", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("weights", no_wrap=True)
    table.add_column("what it does")
    for kernel in kernels:
        weights = "\n\n".join(format_weights(p) for p in kernel.parts)
        if kernel.is_gradient_pair:
            weights = f"x:\n{format_weights(kernel.parts[0])}\ny:\n{format_weights(kernel.parts[1])}"
        table.add_row(kernel.name, weights, kernel.description)
    Console().print(table)


def render_rows(rows, columns, fmt, *, title=None):
    """``rows`` (dicts) as a rich table on stdout, or as json/csv/markdown text."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console().print(table)
    return ""


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
