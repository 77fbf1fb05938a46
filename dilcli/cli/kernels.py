"""``dilcli kernels``: the named kernels and their weights."""

from __future__ import annotations

import click

from dilcli.cli.group import cli
from dilcli.cli.options import Renamed


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: name, description and weights for reading; json: a list of objects "
    "{name, description, weights} for scripts.",
)
@click.option(
    "--1d",
    "--signal",
    "one_d",
    cls=Renamed,
    old=("--signal",),  # before 0.2; --1d as in the rf commands
    is_flag=True,
    help="List the 1-D kernels, for 'dilcli signal'.",
)
def kernels(fmt, one_d):
    """List the named kernels and their weights.

    Each name can be given to -k of 'convolve' and 'context' (2-D kernels) or, with
    --1d, of 'signal'.

    \b
    Examples:
      dilcli kernels
      dilcli kernels --1d
      dilcli kernels --format json
    """
    import json

    from dilcli.core.kernels import definitions

    named = definitions(1 if one_d else 2)
    if fmt == "json":
        rows = [
            {
                "name": name,
                "description": description,
                "weights": [
                    [list(r) for r in p] if isinstance(p[0], tuple) else list(p) for p in parts
                ],
            }
            for name, description, parts in named
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    from dilcli.render.tables import kernel_table

    kernel_table(named)
