"""The ``dilcli`` command group and the script's entry point."""

from __future__ import annotations

import sys

import click

from dilcli.cli.options import GroupedCommand


def _print_version(ctx, param, value):
    """``--version``: the version, from the package metadata, and what this install runs."""
    if not value or ctx.resilient_parsing:
        return
    import importlib.util

    from dilcli import __version__
    from dilcli.core import engine, parallel

    compiled = engine._cengine is not None
    click.echo(f"dilcli {__version__}")
    click.echo(
        "engine: "
        + ("compiled (C, OpenMP)" if compiled else "numpy (the compiled engine was not built)")
    )
    click.echo(f"threads: {parallel.threads()}")
    extras = {"dask": "distributed"}
    for extra, module in extras.items():
        present = importlib.util.find_spec(module) is not None
        click.echo(f"{extra}: {'installed' if present else 'not installed'}")
    ctx.exit()


# The module of each command: imported when that command runs (help imports them all),
# so 'dilcli rf-table' never reads the image commands' code.
COMMAND_MODULES = {
    "convolve": "images",
    "context": "images",
    "signal": "signal",
    "kernels": "kernels",
    "rf-table": "rf",
    "rf-suggest": "rf",
    "rf-map": "rf",
}


class LazyGroup(click.Group):
    """A group whose commands are defined in modules loaded on first use.

    Its commands list their options in sections (:class:`GroupedCommand`), and its
    ``--help`` gives each command's whole summary, wrapped, never cut.
    """

    command_class = GroupedCommand

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx, name):
        if name in COMMAND_MODULES and name not in self.commands:
            import importlib

            importlib.import_module(f"dilcli.cli.{COMMAND_MODULES[name]}")
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version, the engine in use (compiled or numpy) and the extras, and exit.",
)
def cli():
    """Dilated (atrous) convolution for images, feature maps and signals.

    After Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions (2015).
    'dilcli COMMAND --help' explains each command, with examples.

    \b
    Examples:
      dilcli convolve sample_images -k laplacian -d 1,2,4,8 -o out --montage
      dilcli context photo.png --preset starlet --levels 5 -o planes
      dilcli signal sample_signals/chirp.wav -k 1,1 -d 1,2,4,8 --mode causal --stack -o out
      dilcli rf-table --preset context-basic
      dilcli kernels
    """


def main():
    """Entry point of the ``dilcli`` script."""
    try:
        cli(prog_name="dilcli")
    except KeyboardInterrupt as stop:  # Ctrl-C: 130; SIGTERM in a batch (Terminated): 143
        sys.stderr.write("interrupted\n")
        sys.exit(128 + int(getattr(stop, "signum", 2)))
