"""Tables for the terminal (rich) and for machines (JSON, CSV, Markdown).

One list of row dictionaries feeds every format, so they cannot disagree.
"""

from __future__ import annotations


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
    """``rows`` (dicts) as a rich table on stdout, or as json/csv/markdown text."""
    if fmt == "json":
        import json

        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n"
        )
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
