"""Option bundles every command shares, and the parsing of their values.

Choices come from :mod:`dilcli.vocab`; a value the library refuses becomes a usage
error naming the option (exit 2).
"""

from __future__ import annotations

import functools

import click

from dilcli.vocab import (
    BOUNDARIES,
    DEFAULT_BOUNDARY,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    MAPPINGS,
    MAX_FILE_DILATIONS,
    MAX_INT_OPTION,
    MODES,
    OUTPUT_FORMATS,
    SIGNAL_MODES,
)


class Renamed(click.Option):
    """An option whose old spellings still work but no longer show in ``--help``.

    ``old=("--kernel",)`` keeps scripts written for the old name running; help and
    messages teach the new one.
    """

    def __init__(self, *args, old=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.old_names = set(old)

    def get_help_record(self, ctx):
        saved = self.opts, self.secondary_opts
        self.opts = [name for name in self.opts if name not in self.old_names]
        self.secondary_opts = [name for name in self.secondary_opts if name not in self.old_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts, self.secondary_opts = saved


class NothingRun(click.ClickException):
    """A batch refused before it ran anything: one line, exit 2 like a usage error."""

    exit_code = 2


# --- option parsing shared by commands ------------------------------------------------


def parse_int_list(value, *, name="dilations", minimum=1, maximum=MAX_INT_OPTION):
    """``"1,2,4,8"`` -> (1, 2, 4, 8); ``"1-4"`` -> (1, 2, 3, 4); each in [minimum, maximum].

    Empty items (``1,,2``, a trailing comma) are refused: they are typos, not values.
    """
    items = []
    parts = str(value).replace(" ", "").split(",")
    if any(not part for part in parts) and parts != [""]:
        raise click.BadParameter(f"{value!r} has an empty item (write e.g. 1,2,4,8)")
    for part in parts:
        if not part:
            continue
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1) if part[0] != "-" else (None, None)
                low, high = int(low), int(high)
                if high < low:
                    raise click.BadParameter(f"the range {part!r} is empty (write low-high)")
                if high > maximum or low < minimum:
                    bad = high if high > maximum else low
                    raise click.BadParameter(_out_of_range(name, bad, minimum, maximum))
                if high - low >= 1_000_000:
                    raise click.BadParameter(f"the range {part!r} has over a million items")
                items.extend(range(low, high + 1))
            else:
                items.append(int(part))
        except (TypeError, ValueError):
            raise click.BadParameter(
                f"{part!r} is not an integer (expected e.g. 1,2,4,8)"
            ) from None
    if not items:
        raise click.BadParameter(f"give at least one of the {name}, e.g. 1,2,4,8")
    bad = [i for i in items if not minimum <= i <= maximum]
    if bad:
        raise click.BadParameter(_out_of_range(name, bad[0], minimum, maximum))
    return tuple(items)


def _out_of_range(name, value, minimum, maximum):
    return f"{name} must be integers from {minimum} to {maximum}, got {value}"


def _int_list_callback(name, minimum=1, most=None):
    """Parse a list option; ``most`` bounds how many items (one output file each)."""

    def callback(ctx, param, value):
        if value is None:
            return None
        items = parse_int_list(value, name=name, minimum=minimum)
        if most is not None and len(items) > most:
            raise click.BadParameter(
                f"{len(items):,} {name}, over the limit of {most:,} (each one writes a file)"
            )
        return items

    return callback


def file_dilations_option(help, default="1,2,4,8"):
    """-d/--dilations of a file command: each dilation writes a file per input, so at
    most ``MAX_FILE_DILATIONS`` of them."""
    return click.option(
        "-d",
        "--dilations",
        default=default,
        show_default=default is not None,
        callback=_int_list_callback("dilations", most=MAX_FILE_DILATIONS),
        help=help,
    )


def load_kernel_option(spec, ndim=2):
    """A named kernel, weights as text, or a .npy/.csv/.txt file; usage error if bad.

    Custom kernels are limited to ``dilcli.core.kernels.MAX_KERNEL_TAPS`` taps (text files
    to ``MAX_KERNEL_TEXT_BYTES``), checked before the weights are allocated.
    """
    from dilcli.io.kernelspecs import resolve_kernel_spec

    try:
        return resolve_kernel_spec(spec, ndim=ndim)
    except ValueError as error:
        reason = " ".join(str(error).split())
        raise click.BadParameter(reason, param_hint="'-k' / '--kernel'") from None


def _apply(decorators):
    """One decorator applying ``decorators`` in order, as if stacked above a command."""

    def decorate(command):
        return functools.reduce(lambda cmd, dec: dec(cmd), reversed(decorators), command)

    return decorate


def correlation_options(*, signal=False):
    """--mode, --boundary, --cval, --convolve: how the kernel meets the input.

    Signals add the causal mode, whose boundary defaults differently.
    """
    if signal:
        mode = click.option(
            "--mode",
            type=click.Choice(SIGNAL_MODES),
            default="same",
            show_default=True,
            help=(
                "Output length: the input's; only where the kernel fits; every overlap; or causal, "
                "the input's with y[i] seeing only x[<=i] (WaveNet, TCN)."
            ),
        )
        boundary = click.option(
            "--boundary",
            type=click.Choice(BOUNDARIES),
            default=None,
            help=(
                "How the signal is extended past its ends (scipy.ndimage's meanings) [default: "
                "reflect; in causal mode constant, and only constant or nearest are allowed]."
            ),
        )
    else:
        mode = click.option(
            "--mode",
            type=click.Choice(MODES),
            default="same",
            show_default=True,
            help="Output size: same as the input, only where the kernel fits, or every overlap.",
        )
        boundary = click.option(
            "--boundary",
            type=click.Choice(BOUNDARIES),
            default=DEFAULT_BOUNDARY,
            show_default=True,
            help="How the input is extended outside its edges (scipy.ndimage's meanings).",
        )
    cval = click.option(
        "--cval",
        type=float,
        default=0.0,
        show_default=True,
        help=f"Value outside the {'signal' if signal else 'input'} for --boundary constant.",
    )
    flip = click.option(
        "--convolve",
        "flip",
        is_flag=True,
        help="Flip the kernel (true convolution) instead of correlating.",
    )
    return _apply([mode, boundary, cval, flip])


def rendering_options(command):
    """--format, --map, --gain, --bits, --compression: how responses become files."""
    decorators = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(tuple(OUTPUT_FORMATS)),
            default="png",
            show_default=True,
            help=(
                "png: pixels for viewing (see --map); tiff, npy: exact float32 responses "
                "(tiff with --bits: pixels, as png)."
            ),
        ),
        click.option(
            "--map",
            "mapping",
            type=click.Choice(MAPPINGS),
            default=None,
            help=(
                "Response to pixels (png): abs |y|; signed 0.5+y/2 (zero is mid-grey); clip y; "
                "stretch |y| over the image's 99.9th percentile; diverging blue-white-red. "
                "Values are times --gain, clipped to [0,1]. Default: abs for kernels with "
                "negative weights, else clip."
            ),
        ),
        click.option(
            "--gain",
            type=float,
            default=1.0,
            show_default=True,
            help="Multiply responses before mapping.",
        ),
        click.option(
            "--bits",
            type=click.Choice(["8", "16"]),
            default=None,
            help="Pixel bit depth of png (and tiff) outputs [default: follow the input].",
        ),
        click.option(
            "--compression",
            type=click.IntRange(0, 9),
            default=1,
            show_default=True,
            help="PNG zlib level: 1 is fast, 9 smallest.",
        ),
    ]
    return _apply(decorators)(command)


def batch_options(command):
    """Output folder, workers, resume and reporting: shared by every file command."""
    decorators = [
        click.option(
            "-o",
            "--output",
            "out_dir",
            type=click.Path(file_okay=False),
            required=True,
            help="Output folder (created if needed).",
        ),
        click.option(
            "-r",
            "--recursive",
            is_flag=True,
            help="Descend into sub-folders of input folders (mirrored in the output).",
        ),
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(min=1),
            default=None,
            help="Worker processes [default: all cores].",
        ),
        click.option(
            "--overwrite",
            is_flag=True,
            help="Recompute everything, even what a previous run finished.",
        ),
        click.option("--fail-fast", is_flag=True, help="Stop at the first input that fails."),
        click.option(
            "--max-pixels",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_PIXELS,
            show_default=True,
            help="Refuse larger images (checked from the header); 0 for no limit.",
        ),
        click.option(
            "--allow-output-in-input",
            is_flag=True,
            help="Allow an output folder inside an input folder.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Print only errors."),
        click.option(
            "-v", "--verbose", is_flag=True, help="One line per file instead of a progress bar."
        ),
        click.option(
            "--log",
            "log_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Append one JSON line per input and per output to this file.",
        ),
        click.option(
            "--scheduler",
            envvar="DASK_SCHEDULER_ADDRESS",
            default=None,
            help=(
                "Run on a Dask cluster at this address (env DASK_SCHEDULER_ADDRESS); needs pip "
                "install 'dilcli[dask]'."
            ),
        ),
    ]
    return _apply(decorators)(command)


class MemorySize(click.ParamType):
    """Bytes from ``512M``, ``2G``, ``1.5GiB``, ``800MB`` or a plain number of bytes
    (K, M, G, T are powers of 1024, as ``ulimit`` and ``docker --memory`` read them)."""

    name = "SIZE"
    _UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    MINIMUM = 2**20

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().replace(" ", "")
        for suffix in ("IB", "B"):
            if text.endswith(suffix) and text[: -len(suffix)][-1:] in "KMGT":
                text = text[: -len(suffix)]
                break
        unit = text[-1:] if text[-1:] in "KMGT" else ""
        number = text[: len(text) - len(unit)]
        try:
            size = float(number) * self._UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a size (write e.g. 512M or 2G)", param, ctx)
        if not self.MINIMUM <= size <= 2**60:  # also NaN and infinity
            self.fail(f"{value!r} is out of range: give at least 1M (e.g. 512M or 2G)", param, ctx)
        return int(size)


def image_input_options(command):
    """--allow-truncated, --frames, --max-frames, --max-memory: how image inputs are read."""
    decorators = [
        click.option(
            "--allow-truncated",
            is_flag=True,
            help=(
                "Decode damaged files (truncated, bad checksums, corrupt data) as far as they can "
                "be read, with a warning, instead of failing them."
            ),
        ),
        click.option(
            "--frames",
            type=click.Choice(["first", "all"]),
            default="first",
            show_default=True,
            help=(
                "Multi-frame GIF, APNG, WebP, TIFF: the first frame, or every frame, as "
                "{stem}_f{n}_... outputs."
            ),
        ),
        click.option(
            "--max-frames",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_FRAMES,
            show_default=True,
            help="With --frames all, refuse files of more frames; 0 for no limit.",
        ),
        click.option(
            "--max-memory",
            type=MemorySize(),
            default=None,
            help=(
                "Working memory per image, e.g. 512M or 2G: TIFF and .npy inputs over it are "
                "computed in bands of rows, exactly as whole [default: RAM/8, at most 512M]."
            ),
        ),
    ]
    return _apply(decorators)(command)
