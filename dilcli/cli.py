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


# --- option parsing shared by commands ------------------------------------------------


def parse_int_list(value, *, name="dilations", minimum=1):
    """``"1,2,4,8"`` -> (1, 2, 4, 8); ``"1-4"`` -> (1, 2, 3, 4); each >= ``minimum``."""
    items = []
    for part in str(value).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1) if part[0] != "-" else (None, None)
                items.extend(range(int(low), int(high) + 1))
            else:
                items.append(int(part))
        except (TypeError, ValueError):
            raise click.BadParameter(f"{part!r} is not an integer (expected e.g. 1,2,4,8)") from None
    if not items:
        raise click.BadParameter(f"give at least one of the {name}, e.g. 1,2,4,8")
    bad = [i for i in items if i < minimum]
    if bad:
        raise click.BadParameter(f"{name} must be integers >= {minimum}, got {bad[0]}")
    return tuple(items)


def _int_list_callback(name, minimum=1):
    def callback(ctx, param, value):
        return None if value is None else parse_int_list(value, name=name, minimum=minimum)

    return callback


def load_kernel_option(spec, ndim=2):
    """A named kernel, weights as text, or a .npy/.csv/.txt file; usage error if bad."""
    from dilcli import kernels

    try:
        if os.path.isfile(spec):
            from dilcli.imageio import load_kernel_file

            return load_kernel_file(spec, ndim=ndim)
        return kernels.resolve_kernel(spec, ndim=ndim)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'-k' / '--kernel'") from None


def correlation_options(command):
    """--mode, --boundary, --cval, --convolve: how the kernel meets the input."""
    decorators = [
        click.option(
            "--mode",
            type=click.Choice(["same", "valid", "full"]),
            default="same",
            show_default=True,
            help="Output size: same as the input, only where the kernel fits, or every overlap.",
        ),
        click.option(
            "--boundary",
            type=click.Choice(BOUNDARY_CHOICES),
            default="reflect",
            show_default=True,
            help="How the input is extended outside its edges (scipy.ndimage's meanings).",
        ),
        click.option("--cval", type=float, default=0.0, show_default=True, help="Value outside the input for --boundary constant."),
        click.option("--convolve", "flip", is_flag=True, help="Flip the kernel (true convolution) instead of correlating."),
    ]
    return functools.reduce(lambda cmd, dec: dec(cmd), reversed(decorators), command)


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
        click.option("--gain", type=float, default=1.0, show_default=True, help="Multiply responses before mapping."),
        click.option("--bits", type=click.Choice(["8", "16"]), default=None, help="PNG bit depth [default: follow the input]."),
        click.option(
            "--compression",
            type=click.IntRange(0, 9),
            default=1,
            show_default=True,
            help="PNG zlib level: 1 is fast, 9 smallest.",
        ),
    ]
    return functools.reduce(lambda cmd, dec: dec(cmd), reversed(decorators), command)


def batch_options(command):
    """Output folder, workers, resume and reporting: shared by every file command."""
    decorators = [
        click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder (created if needed)."),
        click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders of input folders (mirrored in the output)."),
        click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes [default: all cores]."),
        click.option("--overwrite", is_flag=True, help="Recompute everything, even what a previous run finished."),
        click.option("--fail-fast", is_flag=True, help="Stop at the first input that fails."),
        click.option("--max-pixels", type=click.IntRange(min=0), default=250_000_000, show_default=True, help="Refuse larger images (checked from the header); 0 for no limit."),
        click.option("--allow-output-in-input", is_flag=True, help="Allow an output folder inside an input folder."),
        click.option("-q", "--quiet", is_flag=True, help="Print only errors."),
        click.option("-v", "--verbose", is_flag=True, help="One line per file instead of a progress bar."),
    ]
    return functools.reduce(lambda cmd, dec: dec(cmd), reversed(decorators), command)


def run_file_batch(inputs, job, *, out_dir, recursive, jobs, overwrite, fail_fast, quiet, verbose, allow_output_in_input, label, extensions=None):
    """Find inputs, plan, run and report a batch; exit with the batch's code.

    Every file command ends here, so inputs, naming, resume, workers, progress and
    error reporting behave the same for all. ``extensions`` (default: images) says
    which files in folders are inputs.
    """
    from dilcli import batch
    from dilcli.console import BatchConsole

    sniff = extensions is None  # images are recognised by content too
    if extensions is None:
        from dilcli.imageio import IMAGE_EXTENSIONS as extensions
    try:
        batch.check_output_folder(out_dir, inputs, allow_inside=allow_output_in_input)
    except batch.BatchError as error:
        raise click.UsageError(str(error)) from None
    found, skipped = batch.find_inputs(
        inputs, recursive=recursive, extensions=extensions, sniff=sniff, exclude=out_dir
    )
    tasks = batch.plan_tasks(found, out_dir, job)
    with BatchConsole(len(tasks), quiet=quiet, verbose=verbose, label=label) as console:
        for result in skipped:
            if result.status == "failed" or verbose:
                console.on_result(result)
        report = batch.run_batch(
            tasks,
            job,
            out_dir=out_dir,
            jobs=jobs or os.cpu_count() or 1,
            overwrite=overwrite,
            fail_fast=fail_fast,
            on_result=console.on_result,
        )
    report.results[:0] = [r for r in skipped if r.status == "failed"]
    if not found and not skipped:
        console.print("no inputs found")
    console.summary(report)
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
@click.option("-k", "--kernel", "kernel_spec", default="laplacian", show_default=True, help="A named kernel (see 'dilcli kernels'), weights like '1,2,1;0,0,0;-1,-2,-1', or a .npy/.csv/.txt file.")
@click.option("-d", "--dilations", default="1,2,4,8", show_default=True, callback=_int_list_callback("dilations"), help="Dilations, one output each: e.g. 1,2,4,8 or 1-4.")
@correlation_options
@rendering_options
@click.option("--montage", is_flag=True, help="Also write {stem}_{kernel}_montage.png: the input beside every dilation.")
@batch_options
def convolve(inputs, kernel_spec, dilations, mode, boundary, cval, flip, fmt, mapping, gain, bits, compression, montage, max_pixels, **batch):
    """Apply a dilated kernel to images at each dilation.

    INPUTS are image files (PNG, JPEG, TIFF, BMP, WebP, GIF, .npy), folders or glob
    patterns. Each input gives {stem}_{kernel}_d{d}.{ext} per dilation in the output
    folder. Rerunning the same command skips finished work.

    \b
    Example:
      dilcli convolve sample_images -k laplacian -d 1,2,4,8 -o out --montage
    """
    from dilcli.jobs import ConvolveJob, Rendering

    kernel = load_kernel_option(kernel_spec, ndim=2)
    rendering = Rendering(fmt=fmt, mapping=mapping, gain=gain, bits=int(bits) if bits else None, compression=compression)
    job = ConvolveJob(kernel, dilations, mode, boundary, cval, flip, rendering, montage, max_pixels)
    run_file_batch(inputs, job, label="convolve", **batch)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--signal", "one_d", is_flag=True, help="List the 1-D kernels for 'dilcli signal'.")
def kernels(fmt, one_d):
    """List the named kernels and their weights."""
    import json

    from dilcli.kernels import NAMED_KERNELS, NAMED_KERNELS_1D

    table = NAMED_KERNELS_1D if one_d else NAMED_KERNELS
    if fmt == "json":
        rows = [
            {"name": k.name, "description": k.description, "weights": [p.tolist() for p in k.parts]}
            for k in table.values()
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    from dilcli.tables import kernel_table

    kernel_table(table.values())


def main():
    """Entry point of the ``dilcli`` script."""
    try:
        cli(prog_name="dilcli")
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
