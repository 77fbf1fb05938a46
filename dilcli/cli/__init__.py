"""The command line: parse options, call the library, report. Only this package imports
click; numpy, scipy and Pillow are imported inside the commands that use them, so
``dilcli --help`` and the table commands start fast.

One module per family: :mod:`~dilcli.cli.images` (convolve, context),
:mod:`~dilcli.cli.signal`, :mod:`~dilcli.cli.rf` (rf-table, rf-suggest, rf-map),
:mod:`~dilcli.cli.kernels`; shared option bundles in :mod:`~dilcli.cli.options` and the
one batch path in :mod:`~dilcli.cli.runs`.
"""

from dilcli.cli.group import cli, main  # commands load with their module on first use

__all__ = ["cli", "main"]
