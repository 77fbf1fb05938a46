"""``dilcli signal``: dilated 1-D kernels on signal files."""

from __future__ import annotations

import os

import click

from dilcli.cli.group import cli
from dilcli.cli.options import (
    batch_options,
    correlation_options,
    file_dilations_option,
    kernel_option,
    load_kernel_option,
    make_job,
    name_option,
    option,
)
from dilcli.cli.runs import run_file_batch
from dilcli.vocab import ACTIVATIONS, DEFAULT_MAX_SAMPLES, WAV_SCALES


@cli.command("signal")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@kernel_option(
    "A named 1-D kernel (see 'dilcli kernels --1d'), weights like '0.5,-1,0.25', or a "
    ".npy/.csv/.txt file.",
    default="second-difference",
    ndim=1,
)
@file_dilations_option("Dilations: one output each, or the layers of --stack.")
@correlation_options(signal=True)
@option(
    "--stack",
    group="Kernel",
    is_flag=True,
    help=(
        "Apply the dilations one after another (a WaveNet-style stack): one output per layer, "
        "receptive fields printed."
    ),
)
@option(
    "--activation",
    group="Kernel",
    type=click.Choice(ACTIVATIONS),
    default="none",
    show_default=True,
    help="Nonlinearity after each layer of --stack.",
)
@option(
    "--time-column",
    group="Inputs",
    default="auto",
    show_default=True,
    help=(
        "Text tables: a column carried through untouched (header name or 1-based number). auto: a "
        "column headed time, t, timestamp, date...; none: filter every column."
    ),
)
@option(
    "--wav-scale",
    group="Output",
    type=click.Choice(WAV_SCALES),
    default="bound",
    show_default=True,
    help=(
        "WAV outputs (input's rate and sample type) are divided by: bound, the kernel's worst-case"
        " gain sum|w| (to the power of the layer in a stack) when above 1, so no sample can clip; "
        "peak, the file's own peak when above 1; none, nothing (integer samples past full scale "
        "clip)."
    ),
)
@name_option(
    "{stem}_{kernel}_d{d} ({stem}_{kernel}_stack_l{layer}_d{d} with --stack)",
    "{stem}, {ext}, {kernel}, {d}, {layer}",
)
@option(
    "--plot",
    "plot_path",
    group="Output",
    type=click.Path(dir_okay=False),
    default=None,
    help=(
        "Also draw FILE.png: the input and every output on one time axis, with the kernel's taps "
        "at each dilation. Several inputs: one picture each, FILE_{stem}.png (or put {stem} in "
        "FILE)."
    ),
)
@option(
    "--max-samples",
    group="Inputs",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_SAMPLES,
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
    name_template,
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
    from dilcli.core.conv import check_mode_boundary
    from dilcli.io.signals import SIGNAL_EXTENSIONS

    try:
        check_mode_boundary(mode, boundary, spatial=1)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--boundary'") from None
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
    job = make_job(
        SignalJob,
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
        name_template=name_template,
    )
    if stack and not batch["quiet"]:
        _print_signal_stack(job)
    run_file_batch(inputs, job, label="signal", extensions=SIGNAL_EXTENSIONS, **batch)


def _print_signal_stack(job):
    """Each layer's receptive field, on stderr, before the stack runs: the job's layers."""
    from dilcli.core.receptive import causal_receptive_fields, receptive_fields

    kernel, layers = job.kernel, job.build_layers()
    if job.mode == "causal":
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
    from dilcli.render.tables import plain_lines

    cells = (
        (number, layer.dilation, size)
        for number, (layer, size) in enumerate(zip(layers, fields, strict=True), 1)
    )
    for line in plain_lines(("layer", "dilation", "receptive field"), cells):
        click.echo(line, err=True)
