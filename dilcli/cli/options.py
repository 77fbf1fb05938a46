"""Option bundles every command shares, and the parsing of their values.

Choices come from :mod:`dilcli.vocab`; a value the library refuses becomes a usage
error naming the option (exit 2).
"""

from __future__ import annotations

import functools

import click

from dilcli.vocab import (
    BOUNDARIES,
    CAUSAL_BOUNDARIES,
    DEFAULT_BOUNDARY,
    DEFAULT_CAUSAL_BOUNDARY,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    MAPPINGS,
    MAX_FILE_DILATIONS,
    MAX_INT_OPTION,
    MODES,
    OUTPUT_FORMATS,
    SIGNAL_MODES,
    choices_text,
)

# --- --help in sections ---------------------------------------------------------------

#: The sections of a file command's ``--help``, in order; options of no section (``-h``)
#: follow under "Options".
HELP_SECTIONS = ("Inputs", "Kernel", "Stack", "Output", "Batch")


class FiniteFloat(click.types.FloatParamType):
    """A float that is a number: nan and inf would turn every pixel black or NaN."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()


class GroupedOption(click.Option):
    """An option that knows its section of ``--help`` (``group``, one of HELP_SECTIONS)."""

    def __init__(self, *args, group=None, **kwargs):
        super().__init__(*args, **kwargs)
        if group is not None and group not in HELP_SECTIONS:
            raise ValueError(f"unknown help section {group!r}")
        self.group = group


def option(*param_decls, group, **attrs):
    """``click.option``, listed under ``group`` in ``--help`` (see :class:`GroupedCommand`)."""
    attrs.setdefault("cls", GroupedOption)
    return click.option(*param_decls, group=group, **attrs)


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists its options in sections (Inputs, Kernel, ...).

    Each option's section is its ``group`` attribute; a command without groups (the
    table commands) shows one "Options" list as usual.
    """

    def format_options(self, ctx, formatter):
        sections = {}
        # Required options (-o) lead their section, then those with a short flag (-r, -k,
        # -j: the everyday ones); otherwise the order they are declared in.
        options = [p for p in self.get_params(ctx) if isinstance(p, click.Option)]
        for param in sorted(options, key=lambda p: (not p.required, not _has_short_flag(p))):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(getattr(param, "group", None) or "Options", []).append(record)
        # One column width for every section, so the help texts line up.
        width = min(
            max((len(term) for rows in sections.values() for term, _ in rows), default=0), 30
        )
        order = (*HELP_SECTIONS, "Options")
        for name in sorted(sections, key=order.index):
            with formatter.section(name):
                formatter.write_dl([(term.ljust(width), text) for term, text in sections[name]])


def _has_short_flag(param):
    return any(not name.startswith("--") for name in param.opts)


class Renamed(GroupedOption):
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


def file_dilations_option(help, default="1,2,4,8", group="Kernel"):
    """-d/--dilations of a file command: each dilation writes a file per input, so at
    most ``MAX_FILE_DILATIONS`` of them."""
    return option(
        "-d",
        "--dilations",
        group=group,
        default=default,
        show_default=default is not None,
        callback=_int_list_callback("dilations", most=MAX_FILE_DILATIONS),
        help=help,
    )


def complete_kernel_names(ndim):
    """Shell completion for -k: the named kernels starting with what was typed, and files.

    The names come from the plain-Python table of :mod:`dilcli.core.kernels`, so
    completing never imports numpy. The file item comes first: bash then falls back to
    file names when no kernel name matches.
    """

    def complete(ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        from dilcli.core.kernels import definitions

        items = [CompletionItem(incomplete, type="file")]
        for name, description, _ in definitions(ndim):
            if name.startswith(incomplete):
                items.append(CompletionItem(name, help=description))
        return items

    return complete


def kernel_option(help, *, default, ndim=2, group="Kernel"):
    """-k/--kernel: a named kernel, weights as text, or a file (names complete in shells)."""
    return option(
        "-k",
        "--kernel",
        "kernel_spec",
        group=group,
        default=default,
        show_default=default is not None,
        shell_complete=complete_kernel_names(ndim),
        help=help,
    )


def name_option(default, fields):
    """--name: the output-name template of a file command (checked by its job)."""
    return option(
        "--name",
        "name_template",
        group="Output",
        default=None,
        metavar="TEMPLATE",
        help=(
            f"Output names, the extension added: a template of {fields} "
            f"[default: {default}]. Fields take Python format specs: {{d:03d}}."
        ),
    )


def make_job(job_class, *args, **kwargs):
    """``job_class(*args, **kwargs)``; the library's refusal of --name becomes a usage
    error naming the option (the job checks its own template)."""
    try:
        return job_class(*args, **kwargs)
    except ValueError as error:
        if str(error).startswith("--name"):
            reason = str(error).removeprefix("--name ")
            raise click.BadParameter(reason, param_hint="'--name'") from None
        raise


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


def correlation_options(*, signal=False, group="Kernel"):
    """--mode, --boundary, --cval, --convolve: how the kernel meets the input.

    Signals add the causal mode, whose boundary defaults differently.
    """
    if signal:
        mode = option(
            "--mode",
            group=group,
            type=click.Choice(SIGNAL_MODES),
            default="same",
            show_default=True,
            help=(
                "Output length: the input's; only where the kernel fits; every overlap; or causal, "
                "the input's with y[i] seeing only x[<=i] (WaveNet, TCN)."
            ),
        )
        boundary = option(
            "--boundary",
            group=group,
            type=click.Choice(BOUNDARIES),
            default=None,
            help=(
                "How the signal is extended past its ends (scipy.ndimage's meanings) [default: "
                f"{DEFAULT_BOUNDARY}; in causal mode {DEFAULT_CAUSAL_BOUNDARY}, and only "
                f"{choices_text(CAUSAL_BOUNDARIES)} are allowed]."
            ),
        )
    else:
        mode = option(
            "--mode",
            group=group,
            type=click.Choice(MODES),
            default="same",
            show_default=True,
            help="Output size: same as the input, only where the kernel fits, or every overlap.",
        )
        boundary = option(
            "--boundary",
            group=group,
            type=click.Choice(BOUNDARIES),
            default=DEFAULT_BOUNDARY,
            show_default=True,
            help="How the input is extended outside its edges (scipy.ndimage's meanings).",
        )
    cval = option(
        "--cval",
        group=group,
        type=FINITE_FLOAT,
        default=0.0,
        show_default=True,
        help=f"Value outside the {'signal' if signal else 'input'} for --boundary constant.",
    )
    flip = option(
        "--convolve",
        "flip",
        group=group,
        is_flag=True,
        help="Flip the kernel (true convolution) instead of correlating.",
    )
    return _apply([mode, boundary, cval, flip])


def _check_format(ctx, param, value):
    """--format zarr needs the 'zarr' extra: one line before anything runs."""
    import importlib.util

    if value == "zarr" and importlib.util.find_spec("zarr") is None:
        raise click.BadParameter("Zarr outputs need zarr: pip install 'dilcli[zarr]'")
    return value


def rendering_options(command):
    """--format, --map, --gain, --bits, --compression: how responses become files."""
    decorators = [
        option(
            "--format",
            "fmt",
            group="Output",
            type=click.Choice(tuple(OUTPUT_FORMATS)),
            default="png",
            show_default=True,
            callback=_check_format,
            help=(
                "png: pixels for viewing (see --map); tiff, npy: exact float32 responses; "
                "zarr: a chunked Zarr store of them, written in parts on a cluster (tiff and "
                "zarr with --bits: pixels, as png)."
            ),
        ),
        option(
            "--map",
            "mapping",
            group="Output",
            type=click.Choice(MAPPINGS),
            default=None,
            help=(
                "Response to pixels (png): tone 1-exp(-|y|/s), s from the kernel or stack, the "
                "same for every image; clip y; abs |y|; signed 0.5+y/2 (zero is mid-grey); "
                "stretch |y| over the image's 99.9th percentile; diverging blue-white-red; "
                "signed-tone, diverging-tone: those two of sign(y)*tone. y is times --gain, "
                "values clipped to [0,1]. Default: clip for blurs and the identity, else tone."
            ),
        ),
        option(
            "--gain",
            group="Output",
            type=FINITE_FLOAT,
            default=1.0,
            show_default=True,
            help="Multiply responses before mapping.",
        ),
        option(
            "--bits",
            group="Output",
            type=click.Choice(["8", "16"]),
            default=None,
            help="Pixel bit depth of png (and tiff) outputs [default: follow the input].",
        ),
        option(
            "--compression",
            group="Output",
            type=click.IntRange(0, 9),
            default=1,
            show_default=True,
            help="PNG deflate level: 1-3 fast (ISA-L), 4-9 smaller and slower (zlib), 0 stored.",
        ),
    ]
    return _apply(decorators)(command)


def batch_options(command):
    """Output folder, workers, resume and reporting: shared by every file command."""
    decorators = [
        option(
            "-o",
            "--output",
            "out_dir",
            group="Output",
            type=click.Path(file_okay=False),
            required=True,
            help="Output folder (created if needed).",
        ),
        option(
            "-r",
            "--recursive",
            group="Inputs",
            is_flag=True,
            help="Descend into sub-folders of input folders (mirrored in the output).",
        ),
        option(
            "-j",
            "--jobs",
            group="Batch",
            type=click.IntRange(min=1),
            default=None,
            help="Worker processes [default: all cores].",
        ),
        option(
            "--overwrite",
            group="Batch",
            is_flag=True,
            help="Recompute everything, even what a previous run finished.",
        ),
        option(
            "--fail-fast", group="Batch", is_flag=True, help="Stop at the first input that fails."
        ),
        option(
            "--max-pixels",
            group="Inputs",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_PIXELS,
            show_default=True,
            help=(
                "Refuse larger images read whole (PNG, JPEG, GIF, WebP, BMP; --frames all; "
                "--montage), checked from the header; 0 for no limit. TIFF, .npy and Zarr "
                "inputs stream in bands of --max-memory instead, whatever their size."
            ),
        ),
        option(
            "--allow-output-in-input",
            group="Output",
            is_flag=True,
            help="Allow an output folder inside an input folder.",
        ),
        option("-q", "--quiet", group="Batch", is_flag=True, help="Print only errors."),
        option(
            "-v",
            "--verbose",
            group="Batch",
            is_flag=True,
            help="One line per file instead of a progress bar.",
        ),
        option(
            "--json",
            "json_output",
            group="Batch",
            is_flag=True,
            help=(
                "Print one JSON object per input and per output on stdout, then a summary "
                "(progress stays on stderr)."
            ),
        ),
        option(
            "--dry-run",
            group="Batch",
            is_flag=True,
            help=(
                "List what would be written, skipped or refused, and why; write nothing "
                "(with --json, as JSON)."
            ),
        ),
        option(
            "--log",
            "log_path",
            group="Batch",
            type=click.Path(dir_okay=False),
            default=None,
            help="Append the JSON lines of --json to this file.",
        ),
        option(
            "--scheduler",
            group="Batch",
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
            bound = "at least 1M" if not size > self.MINIMUM else "at most 1048576T"
            self.fail(f"{value!r} is out of range: give {bound} (e.g. 512M or 2G)", param, ctx)
        return int(size)


def image_input_options(command):
    """--allow-truncated, --frames, --max-frames, --max-memory: how image inputs are read."""
    decorators = [
        option(
            "--allow-truncated",
            group="Inputs",
            is_flag=True,
            help=(
                "Decode damaged files (truncated, bad checksums, corrupt data) as far as they can "
                "be read, with a warning, instead of failing them."
            ),
        ),
        option(
            "--frames",
            group="Inputs",
            type=click.Choice(["first", "all"]),
            default="first",
            show_default=True,
            help=(
                "Multi-frame GIF, APNG, WebP, TIFF: the first frame, or every frame, as "
                "{stem}_f{n}_... outputs."
            ),
        ),
        option(
            "--max-frames",
            group="Inputs",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_FRAMES,
            show_default=True,
            help="With --frames all, refuse files of more frames; 0 for no limit.",
        ),
        option(
            "--max-memory",
            group="Inputs",
            type=MemorySize(),
            default=None,
            help=(
                "Working memory per image, e.g. 512M or 2G: TIFF, .npy and Zarr inputs over it "
                "are computed in bands of rows, exactly as whole, however many pixels "
                "[default: RAM/8, at most 512M]."
            ),
        ),
    ]
    return _apply(decorators)(command)
