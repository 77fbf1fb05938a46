"""The command line: parse options, call the core, report. The only module importing click.

Heavy libraries (numpy, scipy, Pillow) are imported inside the commands that use them,
so ``dilcli --help`` and table commands start fast.
"""

from __future__ import annotations

import functools
import os
import sys

import click

from dilcli import __version__

BOUNDARY_CHOICES = ("reflect", "mirror", "nearest", "wrap", "constant")
# Dilations, kernel sizes and strides past this are refused when parsed: the engines
# index with 64-bit integers, and no image or signal needs more.
MAX_INT_OPTION = 2**31 - 1


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


def _int_list_callback(name, minimum=1):
    def callback(ctx, param, value):
        return None if value is None else parse_int_list(value, name=name, minimum=minimum)

    return callback


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
            type=click.Choice(["same", "valid", "full", "causal"]),
            default="same",
            show_default=True,
            help=(
                "Output length: the input's; only where the kernel fits; every overlap; or causal, "
                "the input's with y[i] seeing only x[<=i] (WaveNet, TCN)."
            ),
        )
        boundary = click.option(
            "--boundary",
            type=click.Choice(BOUNDARY_CHOICES),
            default=None,
            help=(
                "How the signal is extended past its ends (scipy.ndimage's meanings) [default: "
                "reflect; in causal mode constant, and only constant or nearest are allowed]."
            ),
        )
    else:
        mode = click.option(
            "--mode",
            type=click.Choice(["same", "valid", "full"]),
            default="same",
            show_default=True,
            help="Output size: same as the input, only where the kernel fits, or every overlap.",
        )
        boundary = click.option(
            "--boundary",
            type=click.Choice(BOUNDARY_CHOICES),
            default="reflect",
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
            type=click.Choice(["png", "tiff", "npy"]),
            default="png",
            show_default=True,
            help="png: pixels for viewing (see --map); tiff, npy: exact float32 responses.",
        ),
        click.option(
            "--map",
            "mapping",
            type=click.Choice(["abs", "signed", "clip", "stretch", "diverging"]),
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
            help="PNG bit depth [default: follow the input].",
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
            default=250_000_000,
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


def image_input_options(command):
    """--allow-truncated, --frames, --max-frames: how image inputs are read."""
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
            default=1000,
            show_default=True,
            help="With --frames all, refuse files of more frames; 0 for no limit.",
        ),
    ]
    return _apply(decorators)(command)


def run_file_batch(
    inputs,
    job,
    *,
    out_dir,
    recursive,
    jobs,
    overwrite,
    fail_fast,
    quiet,
    verbose,
    allow_output_in_input,
    log_path,
    scheduler,
    label,
    extensions=None,
):
    """Find inputs, plan, run and report a batch; exit with the batch's code.

    Every file command ends here, so inputs, naming, resume, workers, progress and
    error reporting behave the same for all. ``extensions`` (default: images) says
    which files in folders are inputs.
    """
    from dilcli import batch
    from dilcli.batch.console import BatchConsole

    sniff = extensions is None  # images are recognised by content too
    if extensions is None:
        from dilcli.io.images import IMAGE_EXTENSIONS as extensions
    try:
        batch.check_output_folder(out_dir, inputs, allow_inside=allow_output_in_input)
    except batch.BatchError as error:
        raise click.UsageError(str(error)) from None
    created = not os.path.lexists(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise click.BadParameter(f"cannot create {out_dir}: {reason}", param_hint="'-o'") from None
    # Absolute from here on: workers elsewhere (other processes, a Dask cluster whose
    # workers run in other folders) must read and write the same files.
    out_dir = os.path.abspath(out_dir)
    found, skipped = batch.find_inputs(
        inputs, recursive=recursive, extensions=extensions, sniff=sniff, exclude=out_dir
    )
    tasks = batch.plan_tasks(found, out_dir, job)
    try:
        log = batch.JsonLog(log_path, inputs=found, out_dir=out_dir) if log_path else None
    except batch.BatchError as error:
        raise click.BadParameter(str(error), param_hint="'--log'") from None

    def on_result(result):
        console.on_result(result)
        if log:
            log.write(result)

    with BatchConsole(len(tasks), quiet=quiet, verbose=verbose, label=label) as console:
        for result in skipped:  # named at once if failed; skipped ones only with -v
            if result.status == "failed" or verbose:
                on_result(result)
            elif log:
                log.write(result)
        try:
            report = batch.run_batch(
                tasks,
                job,
                out_dir=out_dir,
                jobs=jobs or os.cpu_count() or 1,
                overwrite=overwrite,
                fail_fast=fail_fast,
                on_result=on_result,
                scheduler=scheduler,
            )
        except batch.Refused as error:
            raise NothingRun(str(error)) from None
        except batch.BatchError as error:
            raise click.ClickException(str(error)) from None
        finally:
            if log:
                log.close()
    report.results[:0] = skipped
    if created and not report.count("done"):
        batch.remove_if_unused(out_dir)  # a run that wrote nothing leaves no folder behind
    if not found and not skipped:
        kinds = " ".join(sorted(extensions))
        hint = "" if recursive else "; add -r to look in sub-folders"
        console.print(
            f"error: no inputs found in {', '.join(map(str, inputs))} "
            f"(inputs are files ending {kinds}{hint})",
            style="red",
        )
        sys.exit(1)
    console.summary(report, out_dir=out_dir)
    sys.exit(report.exit_code)


# --- commands -----------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dilcli")
def cli():
    """Dilated (atrous) convolution for images, feature maps and signals.

    After Yu & Koltun, Multi-Scale Context Aggregation by Dilated Convolutions (2015).
    """


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option(
    "-k",
    "--kernel",
    "kernel_spec",
    default="laplacian",
    show_default=True,
    help=(
        "A named kernel (see 'dilcli kernels'), weights like '1,2,1;0,0,0;-1,-2,-1', or a "
        ".npy/.csv/.txt file."
    ),
)
@click.option(
    "-d",
    "--dilations",
    default="1,2,4,8",
    show_default=True,
    callback=_int_list_callback("dilations"),
    help="Dilations, one output each: e.g. 1,2,4,8 or 1-4.",
)
@correlation_options()
@rendering_options
@click.option(
    "--montage",
    is_flag=True,
    help="Also write {stem}_{kernel}_montage.png: the input beside every dilation.",
)
@image_input_options
@batch_options
def convolve(
    inputs,
    kernel_spec,
    dilations,
    mode,
    boundary,
    cval,
    flip,
    fmt,
    mapping,
    gain,
    bits,
    compression,
    montage,
    allow_truncated,
    frames,
    max_frames,
    max_pixels,
    **batch,
):
    """Apply a dilated kernel to images at each dilation.

    INPUTS are image files (PNG, JPEG, TIFF, BMP, WebP, GIF, .npy), folders or glob
    patterns. Each input gives {stem}_{kernel}_d{d}.{ext} per dilation in the output
    folder. Rerunning the same command skips finished work.

    \b
    Example:
      dilcli convolve sample_images -k laplacian -d 1,2,4,8 -o out --montage
    """
    from dilcli.batch.jobs import ConvolveJob
    from dilcli.render.display import Rendering

    kernel = load_kernel_option(kernel_spec, ndim=2)
    rendering = Rendering(
        fmt=fmt,
        mapping=mapping,
        gain=gain,
        bits=int(bits) if bits else None,
        compression=compression,
    )
    job = ConvolveJob(
        kernel, dilations, mode, boundary, cval, flip, rendering, montage, max_pixels,
        allow_truncated=allow_truncated, frames=frames, max_frames=max_frames,
    )  # fmt: skip
    run_file_batch(inputs, job, label="convolve", **batch)


CONTEXT_PRESETS = ("context-basic", "context-large", "starlet")
DEFAULT_STARLET_LEVELS = 5


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option(
    "--preset",
    type=click.Choice(CONTEXT_PRESETS),
    default=None,
    help=(
        "context-basic, context-large: the paper's context module (Table 1), identity-initialised;"
        " starlet: the B3-spline a trous wavelet."
    ),
)
@click.option(
    "-d",
    "--dilations",
    default=None,
    callback=_int_list_callback("dilations"),
    help="A stack of one layer per dilation, the -k kernel at each, per channel: e.g. 1,2,4,8.",
)
@click.option(
    "-k",
    "--kernel",
    "kernel_spec",
    default=None,
    help=(
        "Kernel of the -d stack: a named kernel, weights like '1,2,1;0,0,0;-1,-2,-1', or a "
        ".npy/.csv/.txt file [default: laplacian]."
    ),
)
@click.option(
    "--init",
    type=click.Choice(["kernel", "random"]),
    default="kernel",
    show_default=True,
    help=(
        "random: the seed notebook's small random kernels, randn(k, k) * 0.1 (k x k as -k) from "
        "--seed."
    ),
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Random seed for --init random and for context-large's noise.",
)
@click.option(
    "--weights",
    "weights_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help=(
        "Trained weights, .npz: 'dilations', 'weight_0'..'weight_{L-1}' (C_out, C_in, k, k), "
        "optional 'bias_i'."
    ),
)
@click.option(
    "--levels",
    type=click.IntRange(1, 30),
    default=None,
    help=f"Wavelet planes for --preset starlet [default: {DEFAULT_STARLET_LEVELS}].",
)
@click.option(
    "--truncate/--no-truncate",
    default=None,
    help=(
        "ReLU after every layer but the last [default: on for the context presets and --weights, "
        "off for -d stacks]."
    ),
)
@correlation_options()
@rendering_options
@click.option(
    "--final-only", is_flag=True, help="Write only the last layer (starlet: the residual c_J)."
)
@click.option(
    "--montage",
    is_flag=True,
    help=(
        "Also write {stem}_context_montage.png ({stem}_starlet_montage.png): the input beside "
        "every scale; without --map, each panel is stretched to its own range."
    ),
)
@image_input_options
@batch_options
def context(
    inputs,
    preset,
    dilations,
    kernel_spec,
    init,
    seed,
    weights_path,
    levels,
    truncate,
    mode,
    boundary,
    cval,
    flip,
    fmt,
    mapping,
    gain,
    bits,
    compression,
    final_only,
    montage,
    allow_truncated,
    frames,
    max_frames,
    max_pixels,
    **batch,
):
    """Run a stack of dilated layers; write what every layer (scale) sees.

    INPUTS are images (as for 'convolve') or .npy feature maps (H, W, C), folders or
    glob patterns. Choose one stack: --preset, -d with -k, or --weights. Each input
    gives {stem}_context_l{i}_d{d}.{ext} per layer ({stem}_starlet_w{j} per wavelet
    plane and {stem}_starlet_c{J} for starlet). PNGs of maps with other than 1 or 3
    channels show the channel mean; --format npy or tiff keeps every channel, exactly.

    \b
    Examples:
      dilcli context photo.png --preset starlet --levels 5 -o out --montage
      dilcli context photo.png -d 1,2,4,8 -k laplacian -o out
      dilcli context features.npy --weights model.npz --boundary constant -o out --format npy
    """
    from dilcli.batch.jobs import ContextJob
    from dilcli.render.display import Rendering

    stacks = (("--preset", preset), ("-d/--dilations", dilations), ("--weights", weights_path))
    chosen = [name for name, value in stacks if value is not None]
    if (kernel_spec is not None or init != "kernel") and dilations is None:
        raise click.UsageError("-k/--kernel and --init go with -d/--dilations")
    if len(chosen) != 1:
        got = f"; got {' and '.join(chosen)}" if chosen else ""
        raise click.UsageError(f"choose one stack: --preset, -d/--dilations or --weights{got}")
    if levels is not None and preset != "starlet":
        raise click.UsageError("--levels goes with --preset starlet")
    kernel, layers, stack = None, (), preset
    if preset == "starlet":
        if mode != "same":
            raise click.UsageError(
                "--preset starlet needs --mode same (its planes are differences of images)"
            )
        if truncate is not None:
            raise click.UsageError("--preset starlet is linear: --truncate does not apply")
        dilations = tuple(2**j for j in range(levels or DEFAULT_STARLET_LEVELS))
    elif preset is not None:
        from dilcli.core.stacks import CONTEXT_DILATIONS as dilations
    elif weights_path is not None:
        layers = _load_context_weights(weights_path, truncate=truncate is not False)
        dilations, stack = tuple(layer.dilation for layer in layers), "weights"
    else:
        kernel = load_kernel_option(kernel_spec or "laplacian", ndim=2)
        if kernel.is_gradient_pair and init == "kernel":
            raise click.BadParameter(
                f"{kernel.name} is a gradient pair (a magnitude); a stack needs one kernel, "
                f"e.g. {kernel.name}-x",
                param_hint="'-k' / '--kernel'",
            )
        stack = init if init == "random" else "kernel"
    bits = int(bits) if bits else None
    rendering = Rendering(fmt=fmt, mapping=mapping, gain=gain, bits=bits, compression=compression)
    job = ContextJob(
        stack, tuple(dilations), kernel, tuple(layers), os.path.basename(weights_path or ""),
        seed, truncate, mode, boundary, cval, flip, rendering, montage, final_only, max_pixels,
        allow_truncated=allow_truncated, frames=frames, max_frames=max_frames,
    )  # fmt: skip
    if not batch["quiet"]:
        _print_stack(job)
    run_file_batch(inputs, job, label="context", **batch)


def _load_context_weights(path, *, truncate):
    """The layers of a weights .npz file; a usage error naming the file if it is bad.

    Read by :func:`dilcli.arrays.read_npz` within the limits of :mod:`dilcli.context`
    (``MAX_WEIGHTS_BYTES`` decompressed, ``MAX_WEIGHTS_LAYERS``,
    ``MAX_WEIGHTS_KERNEL_SIDE``), checked from the zip directory and each array's
    header before anything is decompressed.
    """
    from dilcli.core.stacks import (
        MAX_WEIGHTS_BYTES,
        MAX_WEIGHTS_LAYERS,
        check_weights_header,
        stack_from_arrays,
    )
    from dilcli.io import arrays

    try:
        named = arrays.read_npz(
            path,
            max_total_bytes=MAX_WEIGHTS_BYTES,
            max_members=2 * MAX_WEIGHTS_LAYERS + 1,
            check=check_weights_header,
        )
        return stack_from_arrays(named, truncate=truncate)
    except (OSError, ValueError, MemoryError) as error:
        reason = "not enough memory" if isinstance(error, MemoryError) else str(error)
        if isinstance(error, OSError) and error.strerror:
            reason = error.strerror
        reason = " ".join(reason.split())
        raise click.BadParameter(f"{path}: {reason}", param_hint="'--weights'") from None


def _print_stack(job):
    """The stack's layers and receptive fields, on stderr, before it runs."""
    channels = job.layers[0].in_channels if job.layers else 1
    layers = job.build_layers(channels)
    sizes = job.receptive_field_sizes(layers)
    name = job.weights_name if job.stack == "weights" else job.stack
    if job.stack == "kernel":
        name = f"{job.kernel.name} stack"
    elif job.stack == "random":
        name = f"random {'x'.join(map(str, job.kernel.shape))} kernels, seed {job.seed}"
    click.echo(f"{name}: {len(layers)} layers", err=True)
    click.echo("  layer  kernel  dilation  ReLU  receptive field", err=True)
    for number, (layer, (rows, columns)) in enumerate(zip(layers, sizes, strict=True), 1):
        kernel = "x".join(str(k) for k in layer.kernel_shape)
        relu = "yes" if layer.truncate else "no"
        row = f"  {number:>5}  {kernel:>6}  {layer.dilation:>8}  {relu:>4}  {rows:>11}x{columns}"
        click.echo(row, err=True)


@cli.command("signal")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option(
    "-k",
    "--kernel",
    "kernel_spec",
    default="second-difference",
    show_default=True,
    help=(
        "A named 1-D kernel (see 'dilcli kernels --signal'), weights like '0.5,-1,0.25', or a "
        ".npy/.csv/.txt file."
    ),
)
@click.option(
    "-d",
    "--dilations",
    default="1,2,4,8",
    show_default=True,
    callback=_int_list_callback("dilations"),
    help="Dilations: one output each, or the layers of --stack.",
)
@correlation_options(signal=True)
@click.option(
    "--stack",
    is_flag=True,
    help=(
        "Apply the dilations one after another (a WaveNet-style stack): one output per layer, "
        "receptive fields printed."
    ),
)
@click.option(
    "--activation",
    type=click.Choice(["none", "relu", "tanh"]),
    default="none",
    show_default=True,
    help="Nonlinearity after each layer of --stack.",
)
@click.option(
    "--time-column",
    default="auto",
    show_default=True,
    help=(
        "Text tables: a column carried through untouched (header name or 1-based number). auto: a "
        "column headed time, t, timestamp, date...; none: filter every column."
    ),
)
@click.option(
    "--wav-scale",
    type=click.Choice(["bound", "peak", "none"]),
    default="bound",
    show_default=True,
    help=(
        "WAV outputs (input's rate and sample type) are divided by: bound, the kernel's worst-case"
        " gain sum|w| (to the power of the layer in a stack) when above 1, so no sample can clip; "
        "peak, the file's own peak when above 1; none, nothing (integer samples past full scale "
        "clip)."
    ),
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help=(
        "Also draw FILE.png: the input and every output on one time axis, with the kernel's taps "
        "at each dilation. Several inputs: one picture each, FILE_{stem}.png (or put {stem} in "
        "FILE)."
    ),
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=0),
    default=250_000_000,
    show_default=True,
    help="Refuse signals of more values (samples x channels), checked before parsing; 0: no limit.",
)
@batch_options
def signal_command(
    inputs,
    kernel_spec,
    dilations,
    mode,
    boundary,
    cval,
    flip,
    stack,
    activation,
    time_column,
    wav_scale,
    plot_path,
    max_samples,
    max_pixels,
    **batch,
):
    """Apply a dilated 1-D kernel to signals: CSV/TSV/TXT tables, .npy arrays, WAV audio.

    INPUTS are files, folders or glob patterns. Each input gives
    {stem}_{kernel}_d{d}.{ext} per dilation, in the input's format (with --stack,
    {stem}_{kernel}_stack_l{i}_d{d}.{ext} per layer). Table columns are channels; a
    header row is kept; a time column is copied untouched. Rerunning skips finished work.

    \b
    Examples:
      dilcli signal sample_signals/sensors.csv -k difference -d 1,4,16 -o out --plot out/sensors.png
      dilcli signal sample_signals/chirp.wav -k 1,1 -d 1,2,4,8,16 --mode causal --stack -o out
    """
    from dilcli.batch.jobs import SignalJob
    from dilcli.io.signals import SIGNAL_EXTENSIONS

    if mode == "causal" and boundary not in (None, "constant", "nearest"):
        raise click.BadParameter(
            f"causal mode allows constant or nearest only ({boundary} looks ahead)",
            param_hint="'--boundary'",
        )
    if activation != "none" and not stack:
        raise click.UsageError("--activation applies between the layers of --stack; add --stack")
    if plot_path is not None and not plot_path.lower().endswith(".png"):
        raise click.BadParameter(
            f"{plot_path}: the picture is a PNG; name it FILE.png", param_hint="'--plot'"
        )
    kernel = load_kernel_option(kernel_spec, ndim=1)
    plot, per_input = None, False
    if plot_path is not None:
        one_file = len(inputs) == 1 and os.path.isfile(inputs[0])
        plot, per_input = os.path.abspath(plot_path), "{stem}" in plot_path or not one_file
        if per_input and "{stem}" not in plot:
            root, ext = os.path.splitext(plot)
            plot = f"{root}_{{stem}}{ext}"
    job = SignalJob(
        kernel,
        dilations,
        mode,
        boundary,
        cval,
        flip,
        stack,
        activation,
        time_column,
        wav_scale,
        plot,
        per_input,
        max_samples,
    )
    if stack and not batch["quiet"]:
        _print_signal_stack(kernel, dilations, mode)
    run_file_batch(inputs, job, label="signal", extensions=SIGNAL_EXTENSIONS, **batch)


def _print_signal_stack(kernel, dilations, mode):
    """Each layer's receptive field, on stderr, before the stack runs."""
    from dilcli.core.receptive import Layer, causal_receptive_fields, receptive_fields

    layers = [Layer(kernel.shape[0], d) for d in dilations]
    if mode == "causal":
        fields, what = causal_receptive_fields(layers), "past samples reaching y[i] (x[i] included)"
    else:
        fields, what = receptive_fields(layers), "input samples reaching y[i] (centred on i)"
    click.echo(
        (
            f"{kernel.name} stack: {len(layers)} layers, kernel {kernel.shape[0]}; receptive field"
            f" = {what}"
        ),
        err=True,
    )
    click.echo("  layer  dilation  receptive field", err=True)
    for number, (dilation, size) in enumerate(zip(dilations, fields, strict=True), 1):
        click.echo(f"  {number:>5}  {dilation:>8}  {size:>15}", err=True)


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--signal", "one_d", is_flag=True, help="List the 1-D kernels for 'dilcli signal'.")
def kernels(fmt, one_d):
    """List the named kernels and their weights."""
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


# --- receptive fields: rf-table, rf-map, rf-suggest -----------------------------------

RF_FORMATS = ("table", "json", "csv", "markdown")
RF_MAP_SUFFIXES = (".png",)


def layer_options(*, required, example, kernel_default, kernel_example=""):
    """-d, -k, -s: a stack of layers, shared by rf-table and rf-map."""
    decorators = [
        click.option(
            "-d",
            "--dilations",
            required=required,  # no default=None here: click 8.4 then skips the check
            callback=_int_list_callback("dilations"),
            help=f"One layer per dilation, e.g. {example}.",
        ),
        click.option(
            "-k",
            "--kernel",
            "kernels",
            default=None,
            callback=_int_list_callback("kernel sizes"),
            help=(
                f"Kernel size, one for all layers or one per layer{kernel_example} "
                f"[default: {kernel_default}]."
            ),
        ),
        click.option(
            "-s",
            "--strides",
            default=None,
            callback=_int_list_callback("strides"),
            help="Strides, one for all layers or one per layer [default: 1].",
        ),
    ]
    return _apply(decorators)


def _rf_options(command):
    """--1d and --format: shared by rf-table and rf-suggest."""
    decorators = [
        click.option(
            "--1d",
            "one_d",
            is_flag=True,
            help="Signals: k taps per layer (params k, not k*k); coverage along one axis.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(RF_FORMATS),
            default="table",
            show_default=True,
            help="table: rich table; json, csv, markdown for machines and docs.",
        ),
    ]
    return _apply(decorators)(command)


def _rf_stack(preset, dilations, kernels, strides, channels, repeat):
    """(layers, channels, title) from rf-table's options; usage errors when they clash."""
    from dilcli.core import receptive

    if preset and dilations:
        raise click.UsageError("give either --preset or -d/--dilations, not both")
    if not preset and not dilations:
        raise click.UsageError(
            "give the dilations (e.g. -d 1,2,4,8) or a --preset "
            "(context-basic, context-large, seed, wavenet)"
        )
    if preset and (kernels or strides):
        raise click.UsageError(f"--preset {preset} sets the kernels and strides itself; drop -k/-s")
    if repeat is not None and preset != "wavenet":
        raise click.UsageError("--repeat is for --preset wavenet")
    if preset in ("context-basic", "context-large"):
        large = preset == "context-large"
        width = channels or receptive.DEFAULT_CONTEXT_CHANNELS
        layers, pairs = receptive.context_module(large=large, channels=width)
        return (
            layers,
            pairs,
            f"Context module, {'large' if large else 'basic'} (Table 1), C = {width}",
        )
    if preset == "seed":
        return (
            receptive.make_stack(receptive.SEED_DILATIONS, kernels=3),
            channels,
            "Seed: 3x3 at dilations 1,2,4,8",
        )
    if preset == "wavenet":
        repeat = repeat or 1
        return (
            receptive.wavenet_stack(repeat),
            channels,
            f"WaveNet: kernel 2 at dilations 1..512, x{repeat}",
        )
    try:
        layers = receptive.make_stack(dilations, kernels=kernels or 3, strides=strides or 1)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    return layers, channels, None


@cli.command("rf-table")
@layer_options(
    required=False,
    example="1,1,2,4,8,16,1 or 1-4",
    kernel_default="3",
    kernel_example=" (e.g. 3,3,1)",
)
@click.option(
    "--channels",
    type=click.IntRange(1, MAX_INT_OPTION),
    default=None,
    help=(
        "Channels C: every layer C -> C (context-large: 2C,2C,4C,...,C; default 21 for the "
        "context presets). Without it, params counts weights per channel pair."
    ),
)
@click.option(
    "--preset",
    type=click.Choice(["context-basic", "context-large", "seed", "wavenet"]),
    default=None,
    help=(
        "context-basic/-large: the paper's Table 1 (3x3 at 1,1,2,4,8,16,1, then 1x1); "
        "seed: 3x3 at 1,2,4,8; wavenet: kernel 2 at 1,2,...,512 (1-D)."
    ),
)
@click.option(
    "--repeat",
    type=click.IntRange(1, 10_000),
    default=None,
    help="--preset wavenet: how many times the 1..512 block repeats [default: 1].",
)
@click.option(
    "--compare",
    is_flag=True,
    help=(
        "Instead of the layer table: plain convolutions, pooling and one large kernel "
        "against the stack, for the same receptive field."
    ),
)
@_rf_options
def rf_table(dilations, kernels, strides, channels, preset, repeat, compare, one_d, fmt):
    """Receptive field, coverage and parameters of a stack of dilated layers.

    One row per layer: span of its dilated kernel, jump (output spacing in input
    pixels), receptive field, growth, coverage (share of the receptive-field box whose
    pixels reach the centre output; below 100% the stack has holes), parameters and
    the Hybrid Dilated Convolution check (M_i, and the rule's verdict for the layers so
    far). Holes are reported on stderr with a hole-free schedule to use instead.

    \b
    Examples:
      dilcli rf-table -k 3 -d 1,1,2,4,8,16,1
      dilcli rf-table --preset context-large --channels 21 --format markdown
      dilcli rf-table -d 2,2,2 --compare
      dilcli rf-table --preset wavenet --repeat 3 --format json
    """
    from dilcli.core import receptive
    from dilcli.render import rfreport

    layers, channel_spec, title = _rf_stack(preset, dilations, kernels, strides, channels, repeat)
    ndim = 1 if one_d or preset == "wavenet" else 2
    title = title or f"Receptive field: {rfreport.stack_title(layers, ndim)}"
    rows = receptive.layer_stats(layers, channel_spec, ndim=ndim)
    if compare:
        per_pair = channel_spec
        if isinstance(channel_spec, list):  # the context presets: C -> C only if basic
            widths = {width for pair in channel_spec for width in pair}
            per_pair = widths.pop() if len(widths) == 1 else None
            if per_pair is None:
                click.echo("note: --compare counts weights per channel pair", err=True)
        table = receptive.compare_designs(layers, per_pair, ndim=ndim)
        field = rows[-1]["rf"]
        size = f"{field}x{field}" if ndim == 2 else str(field)

        def display(row):
            shown = dict(row, params=f"{row['params']:,}")
            shown["rf"] = f"{row['rf']}x{row['rf']}" if ndim == 2 else str(row["rf"])
            if row["coverage"] is not None:
                shown["coverage"] = receptive.share_text(round(row["coverage"] * 10**6), 10**6)
            return shown

        columns = ("design", "layers", "params", "rf", "resolution", "coverage")
        rfreport.print_rows(
            table, columns, fmt, title=f"Ways to a {size} receptive field", display=display
        )
    else:
        columns = rfreport.columns_for(rows, channel_spec, fmt)
        display = rfreport.row_display(ndim)
        rfreport.print_rows(
            rows, columns, fmt, title=title, display=display, headers=rfreport.RF_HEADERS
        )
    for text, is_warning in rfreport.hole_report(layers, rows, ndim):
        color = False if os.environ.get("NO_COLOR") else None
        click.secho(text, fg="yellow" if is_warning else None, err=True, color=color)


@cli.command("rf-suggest")
@click.option(
    "--target",
    type=click.IntRange(min=2),
    required=True,
    help="Receptive field to reach (pixels per side, or samples with --1d).",
)
@click.option(
    "-k",
    "--kernel",
    type=click.IntRange(min=2),
    default=3,
    show_default=True,
    help="Kernel size of every layer.",
)
@click.option(
    "--max-layers",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Give up beyond this many layers.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1, max=20),
    default=3,
    show_default=True,
    help="How many schedules to show.",
)
@click.option(
    "--channels",
    type=click.IntRange(1, MAX_INT_OPTION),
    default=None,
    help="Channels C (every layer C -> C) for the params column.",
)
@_rf_options
def rf_suggest(target, kernel, max_layers, count, channels, one_d, fmt):
    """Dilation schedules without holes that reach --target with the fewest layers.

    Every pixel of the receptive field reaches the output (coverage 100%). Schedules
    are ranked by the smallest field >= target, then by the most even growth of the
    dilations; each comes with its rf-table.

    \b
    Example:
      dilcli rf-suggest --target 129 -k 3
    """
    from dilcli.core import receptive
    from dilcli.render import rfreport

    try:
        depth, schedules = receptive.suggest_schedules(
            target, kernel, max_layers=max_layers, count=count
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    ndim = 1 if one_d else 2
    results = []
    for dilations in schedules:
        layers = receptive.make_stack(dilations, kernels=kernel)
        rows = receptive.layer_stats(layers, channels, ndim=ndim)
        results.append(
            {"dilations": list(dilations), "kernel": kernel, "rf": rows[-1]["rf"], "layers": rows}
        )
    if fmt == "json":
        rfreport.print_rows(results, None, fmt)
    elif fmt == "csv":
        flat = [
            {"schedule": number, **row}
            for number, result in enumerate(results, 1)
            for row in result["layers"]
        ]
        rfreport.print_rows(flat, tuple(flat[0]), fmt)
    else:
        for number, result in enumerate(results, 1):
            size = f"{result['rf']}x{result['rf']}" if ndim == 2 else str(result["rf"])
            title = f"{number}. -d {','.join(map(str, result['dilations']))}: {size}, no holes"
            rows = result["layers"]
            columns = rfreport.columns_for(rows, channels, fmt)
            display = rfreport.row_display(ndim)
            rfreport.print_rows(
                rows, columns, fmt, title=title, display=display, headers=rfreport.RF_HEADERS
            )
            if number < len(results):
                click.echo()
    fewer = kernel ** (depth - 1)
    if depth > 1 and fewer < target:
        what = f"{kernel}x{kernel}" if ndim == 2 else f"kernel {kernel}"
        most = f"{fewer}x{fewer}" if ndim == 2 else str(fewer)
        click.echo(
            f"{depth} layers are the fewest: {depth - 1} layers of {what} "
            f"reach at most {most} without holes",
            err=True,
        )


@cli.command("rf-map")
@layer_options(required=True, example="2,2,2 or 1,2,5", kernel_default="3, or the --weights size")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The picture to write (.png).",
)
@click.option(
    "--effective",
    is_flag=True,
    help=(
        "Colour by the effective receptive field (impulse response of the stack) "
        "instead of reached / hole."
    ),
)
@click.option(
    "--weights",
    "weights_spec",
    default=None,
    help=(
        "--effective: every layer's weights, a named kernel or text like "
        "'1,2,1;2,4,2;1,2,1' [default: uniform]; magnitudes are shown."
    ),
)
@click.option(
    "--1d",
    "one_d",
    is_flag=True,
    help="Signals: which positions each layer's kernel uses at its dilation, input to output.",
)
@click.option(
    "--causal",
    is_flag=True,
    help="--1d: causal padding (the output sees only the past), as in WaveNet.",
)
def rf_map(dilations, kernels, strides, output, effective, weights_spec, one_d, causal):
    """Draw which input pixels reach the centre output, one panel per layer.

    Holes of a gridded stack show as pale cells. --effective shades the pixels by
    their weight on the output; --1d draws the dependency diagram of one output sample.

    \b
    Examples:
      dilcli rf-map -d 2,2,2 -o gridding.png
      dilcli rf-map -d 1,2,5 --effective -o erf.png
      dilcli rf-map -k 2 -d 1,2,4,8 --1d --causal -o wavenet.png
    """
    from dilcli.core import receptive

    if not output.lower().endswith(RF_MAP_SUFFIXES):
        raise click.BadParameter(
            "rf-map writes PNG: name the file *.png", param_hint="'-o' / '--output'"
        )
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise click.BadParameter(f"folder {folder} does not exist", param_hint="'-o' / '--output'")
    if causal and not one_d:
        raise click.UsageError("--causal is for --1d diagrams")
    if weights_spec and not effective:
        raise click.UsageError("--weights is for --effective")
    weights = None
    if weights_spec:
        kernel = load_kernel_option(weights_spec, ndim=1 if one_d else 2)
        if kernel.is_gradient_pair or len(set(kernel.shape)) != 1:
            raise click.BadParameter(
                f"{weights_spec}: give one square kernel", param_hint="'--weights'"
            )
        if kernels and set(kernels) != {kernel.shape[0]}:
            raise click.BadParameter(
                f"{weights_spec} is {kernel.shape[0]} wide "
                f"but -k says {','.join(map(str, kernels))}",
                param_hint="'--weights'",
            )
        kernels = (kernel.shape[0],)
        weights = [kernel.parts[0]] * len(dilations)
    try:
        layers = receptive.make_stack(dilations, kernels=kernels or 3, strides=strides or 1)
        from dilcli.render import rfmap

        if one_d:
            picture = rfmap.signal_picture(
                layers, causal=causal, effective=effective, kernels=weights
            )
        else:
            picture = rfmap.coverage_picture(layers, effective=effective, kernels=weights)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        rfmap.save_png(picture, output)
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    from dilcli.batch.console import display_path

    field = receptive.receptive_fields(layers)[-1]
    size = str(field) if one_d else f"{field}x{field}"
    click.echo(
        f"wrote {display_path(output)} "
        f"({picture.width}x{picture.height} px; receptive field {size})",
        err=True,
    )


def main():
    """Entry point of the ``dilcli`` script."""
    try:
        cli(prog_name="dilcli")
    except KeyboardInterrupt as stop:  # Ctrl-C: 130; SIGTERM in a batch (Terminated): 143
        sys.stderr.write("interrupted\n")
        sys.exit(128 + int(getattr(stop, "signum", 2)))
