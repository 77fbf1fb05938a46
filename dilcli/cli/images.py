"""``dilcli convolve`` and ``dilcli context``: images and feature maps."""

from __future__ import annotations

import os

import click

from dilcli.cli.group import cli
from dilcli.cli.options import (
    Renamed,
    batch_options,
    correlation_options,
    file_dilations_option,
    image_input_options,
    kernel_option,
    load_kernel_option,
    make_job,
    name_option,
    option,
    rendering_options,
)
from dilcli.cli.runs import run_file_batch
from dilcli.vocab import (
    CONTEXT_DILATIONS,
    CONTEXT_PRESETS,
    DEFAULT_SEED,
    DEFAULT_STARLET_LEVELS,
    MAX_STARLET_LEVELS,
    shape_text,
)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@kernel_option(
    "A named kernel (see 'dilcli kernels'), weights like '1,2,1;0,0,0;-1,-2,-1', or a "
    ".npy/.csv/.txt file.",
    default="laplacian",
)
@file_dilations_option("Dilations, one output each: e.g. 1,2,4,8 or 1-4.")
@correlation_options()
@rendering_options
@name_option("{stem}_{kernel}_d{d}", "{stem}, {ext} (the input's), {kernel}, {d}, {layer}, {frame}")
@option(
    "--montage",
    group="Output",
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
    name_template,
    montage,
    allow_truncated,
    frames,
    max_frames,
    max_memory,
    max_pixels,
    **batch,
):
    """Apply a dilated kernel to images at each dilation.

    INPUTS are image files (PNG, JPEG, TIFF, BMP, WebP, GIF, .npy), Zarr stores,
    folders or glob patterns. Each input gives {stem}_{kernel}_d{d}.{ext} per
    dilation in the output folder. Rerunning the same command skips finished work.

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
    job = make_job(
        ConvolveJob, kernel, dilations, mode, boundary, cval, flip, rendering, montage,
        max_pixels, allow_truncated=allow_truncated, frames=frames, max_frames=max_frames,
        name_template=name_template, max_memory=max_memory,
    )  # fmt: skip
    run_file_batch(inputs, job, label="convolve", **batch)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@option(
    "--preset",
    group="Stack",
    type=click.Choice(CONTEXT_PRESETS),
    default=None,
    help=(
        "context-basic, context-large: the paper's context module (Table 1), identity-initialised;"
        " starlet: the B3-spline a trous wavelet."
    ),
)
@file_dilations_option(
    "A stack of one layer per dilation, the -k kernel at each, per channel: e.g. 1,2,4,8.",
    default=None,
    group="Stack",
)
@kernel_option(
    "Kernel of the -d stack: a named kernel, weights like '1,2,1;0,0,0;-1,-2,-1', or a "
    ".npy/.csv/.txt file [default: laplacian].",
    default=None,
    group="Stack",
)
@option(
    "--init",
    group="Stack",
    type=click.Choice(["kernel", "random"]),
    default="kernel",
    show_default=True,
    help=(
        "random: the seed notebook's small random kernels, randn(k, k) * 0.1 (k x k as -k) from "
        "--seed."
    ),
)
@option(
    "--seed",
    group="Stack",
    type=int,
    default=DEFAULT_SEED,
    show_default=True,
    help="Random seed for --init random and for context-large's noise.",
)
@option(
    "--weights",
    "weights_path",
    group="Stack",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help=(
        "Trained weights, .npz: 'dilations', 'weight_0'..'weight_{L-1}' (C_out, C_in, k, k), "
        "optional 'bias_i'."
    ),
)
@option(
    "--levels",
    group="Stack",
    type=click.IntRange(1, MAX_STARLET_LEVELS),
    default=None,
    help=f"Wavelet planes for --preset starlet [default: {DEFAULT_STARLET_LEVELS}].",
)
@option(
    "--relu/--no-relu",
    "--truncate/--no-truncate",
    "relu",
    group="Stack",
    cls=Renamed,
    old=("--truncate", "--no-truncate"),  # before 0.2; --allow-truncated is about files
    default=None,
    help=(
        "ReLU after every layer but the last [default: on for the context presets and --weights, "
        "off for -d stacks]."
    ),
)
@correlation_options(group="Stack")
@rendering_options
@name_option(
    "{stem}_{prefix}_{scale}",
    "{stem}, {ext}, {prefix} (context, starlet), {stack}, {scale} (l{i}_d{d}, w{j}, c{J}), "
    "{layer}, {d}, {frame}",
)
@option(
    "--final-only",
    group="Output",
    is_flag=True,
    help="Write only the last layer (starlet: the residual c_J).",
)
@option(
    "--montage",
    group="Output",
    is_flag=True,
    help=(
        "Also write {stem}_context_montage.png ({stem}_starlet_montage.png): the input beside "
        "every scale, each by its layer's default (or --map)."
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
    relu,
    mode,
    boundary,
    cval,
    flip,
    fmt,
    mapping,
    gain,
    bits,
    compression,
    name_template,
    final_only,
    montage,
    allow_truncated,
    frames,
    max_frames,
    max_memory,
    max_pixels,
    **batch,
):
    """Run a stack of dilated layers; write what every layer (scale) sees.

    INPUTS are images (as for 'convolve') or .npy feature maps (H, W, C), folders or
    glob patterns. Choose one stack: --preset, -d with -k, or --weights. Each input
    gives {stem}_context_l{i}_d{d}.{ext} per layer ({stem}_starlet_w{j} per wavelet
    plane and {stem}_starlet_c{J} for starlet). PNGs of maps with other than 1 or 3
    channels show the channel mean; --format npy, tiff or zarr keeps every channel, exactly.

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
        dilations = tuple(2**j for j in range(levels or DEFAULT_STARLET_LEVELS))
    elif preset is not None:
        dilations = CONTEXT_DILATIONS
    elif weights_path is not None:
        layers = _load_context_weights(weights_path, relu=relu is not False)
        dilations, stack = tuple(layer.dilation for layer in layers), "weights"
    else:
        kernel = load_kernel_option(kernel_spec or "laplacian", ndim=2)
        if init == "kernel":
            try:
                kernel.stack_weights()
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="'-k' / '--kernel'") from None
        stack = init if init == "random" else "kernel"
    bits = int(bits) if bits else None
    rendering = Rendering(fmt=fmt, mapping=mapping, gain=gain, bits=bits, compression=compression)
    try:
        job = make_job(
            ContextJob, stack, tuple(dilations), kernel, tuple(layers),
            os.path.basename(weights_path or ""), seed, relu, mode, boundary, cval, flip,
            rendering, montage, final_only, max_pixels, allow_truncated=allow_truncated,
            frames=frames, max_frames=max_frames, name_template=name_template,
            max_memory=max_memory,
        )  # fmt: skip
    except ValueError as error:
        raise click.UsageError(f"--preset {preset}: {error}" if preset else str(error)) from None
    if not batch["quiet"]:
        _print_stack(job)
    run_file_batch(inputs, job, label="context", **batch)


def _load_context_weights(path, *, relu):
    """The layers of a weights .npz file; a usage error naming the file if it is bad."""
    from dilcli.io.weights import read_weights

    try:
        return read_weights(path, relu=relu)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--weights'") from None


def _print_stack(job):
    """The stack's layers and receptive fields, on stderr, before it runs."""
    channels = job.layers[0].in_channels if job.layers else 1
    layers = job.build_layers(channels)
    sizes = job.receptive_field_sizes(layers)
    name = job.weights_name if job.stack == "weights" else job.stack
    if job.stack == "kernel":
        name = f"{job.kernel.name} stack"
    elif job.stack == "random":
        name = f"random {shape_text(job.kernel.shape)} kernels, seed {job.seed}"
    from dilcli.render.tables import plain_lines

    click.echo(f"{name}: {len(layers)} layers", err=True)
    cells = (
        (
            number,
            shape_text(layer.kernel_shape),
            layer.dilation,
            "yes" if layer.relu else "no",
            f"{rows:>11}x{columns}",  # the x lines up under 'receptive field'
        )
        for number, (layer, (rows, columns)) in enumerate(zip(layers, sizes, strict=True), 1)
    )
    names = ("layer", "kernel", "dilation", "ReLU", "receptive field")
    for line in plain_lines(names, cells, widths=(5, 6, 8, 4, 0)):
        click.echo(line, err=True)
