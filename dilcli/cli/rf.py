"""``dilcli rf-table``, ``rf-suggest`` and ``rf-map``: receptive fields, exactly."""

from __future__ import annotations

import os

import click

from dilcli.cli.group import cli
from dilcli.cli.options import Renamed, _apply, _int_list_callback, load_kernel_option
from dilcli.vocab import (
    DEFAULT_CONTEXT_CHANNELS,
    MAX_INT_OPTION,
    MAX_WAVENET_REPEAT,
    NETWORK_PRESETS,
    RF_PRESETS,
    SEED_DILATIONS,
    TABLE_FORMATS,
    size_text,
)

# --- receptive fields: rf-table, rf-map, rf-suggest -----------------------------------

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
            "--kernel-size",
            "--kernel",
            "kernels",
            cls=Renamed,
            old=("--kernel",),  # before 0.2; a kernel is weights in 'convolve'
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
            type=click.Choice(TABLE_FORMATS),
            default="table",
            show_default=True,
            help="table: rich table; json, csv, markdown for machines and docs.",
        ),
    ]
    return _apply(decorators)(command)


# --- networks: --network, --spec, --preset NAME[:options] ------------------------------

#: One-dimensional presets: their figures are shown along one axis.
ONE_D_PRESETS = ("wavenet", "tcn")


def _preset_callback(ctx, param, value):
    """A preset name (with options after a colon for network presets), checked."""
    if value is None:
        return None
    name = value.partition(":")[0].strip()
    if name not in (*RF_PRESETS, *NETWORK_PRESETS):
        raise click.BadParameter(
            f"{value!r}: choose one of {', '.join((*RF_PRESETS, *NETWORK_PRESETS))}"
        )
    return value


def _complete_presets(ctx, param, incomplete):
    """Shell completion for --preset: the preset names starting with what was typed."""
    from click.shell_completion import CompletionItem

    names = (*RF_PRESETS, *NETWORK_PRESETS)
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def _pair_callback(what, signed=False):
    """``N`` or ``H,W`` (two integers, per axis) for --at and --input-size."""

    def callback(ctx, param, value):
        if value is None:
            return None
        parts = [part.strip() for part in value.replace("x", ",").split(",")]
        pattern = r"-?\d{1,10}" if signed else r"\d{1,10}"
        import re

        if not 1 <= len(parts) <= 2 or not all(re.fullmatch(pattern, p) for p in parts):
            raise click.BadParameter(f"{value!r}: give {what} as N or H,W (whole numbers)")
        values = tuple(int(p) for p in parts)
        values = values * 2 if len(values) == 1 else values
        if not signed and min(values) < 1:
            raise click.BadParameter(f"{value!r}: {what} must be at least 1")
        if max(abs(v) for v in values) > MAX_INT_OPTION:
            raise click.BadParameter(f"{value!r}: {what} must be at most 2**31 - 1")
        return values

    return callback


def network_options(command):
    """--network, --spec, --at: a whole network, shared by rf-table and rf-map."""
    decorators = [
        click.option(
            "--network",
            "network_file",
            type=click.Path(dir_okay=False),
            default=None,
            help=(
                "A network file: JSON, or the text grammar of --spec (one layer or group per "
                "line, # comments). See docs/design.md, section 17."
            ),
        ),
        click.option(
            "--onnx",
            "onnx_file",
            type=click.Path(dir_okay=False),
            default=None,
            help=(
                "An ONNX model: its Conv, ConvTranspose, pooling, Resize, Add and Concat, up "
                "to the output or the first global pooling / Flatten (pip install "
                "'dilcli[onnx]')."
            ),
        ),
        click.option(
            "--spec",
            default=None,
            help=(
                "A network as text: layers conv3, conv3/d2, conv3x1/s2/p1, pool2, convT4/s2, "
                "up2, id; groups [a|b] (concatenate) or [a|b]+ (add; [f]+ is x + f(x)); "
                "(a,b)*N repeats. E.g. 'conv3,conv3/d2,[conv3/d6|conv3/d12]+'."
            ),
        ),
        click.option(
            "--at",
            callback=_pair_callback("the output position", signed=True),
            default=None,
            help="Networks: the output position I,J whose exact input box is given [default: 0,0].",
        ),
    ]
    return _apply(decorators)(command)


def effective_weight_options(command):
    """--weights and --seed of a network's effective receptive field."""
    decorators = [
        click.option(
            "--weights",
            "network_weights",
            default=None,
            help=(
                "Networks, --effective: random (normal, from --seed), uniform, or a .npz of "
                "weight_0, weight_1, ... one per conv layer, (kh, kw) or (C_out, C_in, kh, "
                "kw) [default: random]."
            ),
        ),
        click.option(
            "--seed",
            type=click.IntRange(0, MAX_INT_OPTION),
            default=0,
            show_default=True,
            help="--effective --weights random: the random seed.",
        ),
    ]
    return _apply(decorators)(command)


def _network_path(files, spec, preset, dilations):
    """True when the options ask about a network (not the layer table of a stack);
    ``files``: --network and --onnx."""
    if any(files) or spec:
        return True
    return bool(preset) and (":" in preset or preset in NETWORK_PRESETS)


def _build_network(files, spec, preset, dilations, kernels, strides, repeat, one_d):
    """``(Network, ndim)`` from the options; usage errors naming the option."""
    from dilcli.core import network, receptive

    network_file, onnx_file = files
    given = [
        name
        for name, value in (("--network", network_file), ("--onnx", onnx_file), ("--spec", spec))
        if value
    ]
    given += ["--preset"] if preset else []
    given += ["-d/--dilations"] if dilations else []
    if len(given) > 1:
        raise click.UsageError(f"give one of {', '.join(given)}, not several")
    if not given:
        raise click.UsageError(
            "give a network: --network FILE, --spec TEXT, --preset NAME or -d DILATIONS"
        )
    if (kernels or strides) and not dilations:
        raise click.UsageError("-k/-s go with -d; a network sets its own kernels and strides")
    if repeat is not None and (not preset or preset.partition(":")[0] != "wavenet"):
        raise click.UsageError("--repeat is for --preset wavenet")
    ndim = 1 if one_d else 2
    try:
        if network_file:
            from dilcli.io.networks import parse_network_file

            try:
                return parse_network_file(network_file), ndim
            except OSError as error:
                reason = f"{network_file}: {error.strerror or error}"
                raise click.BadParameter(reason, param_hint="'--network'") from None
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="'--network'") from None
        if onnx_file:
            from dilcli.io.onnxgraph import read_onnx

            try:
                return read_onnx(onnx_file), ndim
            except (ImportError, ValueError) as error:
                raise click.BadParameter(str(error), param_hint="'--onnx'") from None
        if spec:
            try:
                return network.parse_spec(spec), ndim
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="'--spec'") from None
        if dilations:
            layers = receptive.make_stack(dilations, kernels=kernels or 3, strides=strides or 1)
            return network.from_stack(layers), ndim
        name, options = network.parse_preset(preset)
        if name == "seed":
            return network.from_stack(
                receptive.make_stack(SEED_DILATIONS, kernels=3),
                name="seed",
                provenance="the seed notebook: 3x3 at dilations 1,2,4,8",
            ), ndim
        if name == "wavenet" and repeat is not None:
            options.setdefault("stacks", repeat)
        return network.preset(name, **options), 1 if name in ONE_D_PRESETS else ndim
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def _network_report(net, ndim, fmt, *, at, input_size, pixel_size, rate, verify, effective):
    """rf-table for a network: its layers and figures in ``fmt``; warnings on stderr.
    Exit 1 when --verify finds a disagreement (or cannot check)."""
    from dilcli.core import network
    from dilcli.render import rfreport, tables

    for option, pair in (("--at", at), ("--input-size", input_size)):
        if ndim == 1 and pair is not None and pair[0] != pair[1]:  # (3, 4) showed 3, used 4
            raise click.BadParameter(
                f"'{pair[0]},{pair[1]}': a 1-D network takes one number", param_hint=f"'{option}'"
            )
    at = at or (0, 0)
    if pixel_size or rate:
        try:
            network.physical(1, pixel_size=pixel_size, rate=rate)
        except ValueError as error:
            option = "'--pixel-size'" if pixel_size else "'--rate'"
            raise click.BadParameter(str(error), param_hint=option) from None
    try:
        info = network.describe(net, at=at, input_size=input_size, pixel_size=pixel_size, rate=rate)
    except ValueError as error:  # the exact box of a fractional network, too wide
        raise click.UsageError(f"cannot follow output {at} back to its box: {error}") from None
    if input_size is not None:
        info["input_size"] = input_size
    try:
        info["hdc"] = network.hdc_check(net, at)
    except ValueError as error:  # a field too wide to follow: the rest still stands
        info["hdc"] = {
            "applies": False,
            "reason": "",
            "says": None,
            "reading": None,
            "coverage": {"height": None, "width": None, "area": None},
            "hole_free": None,
            "conclusion": f"coverage not computed: {error}",
        }
    failure = None
    if verify:
        try:
            info["verify"] = network.verify(net, at=at)
        except ValueError as error:
            raise click.ClickException(f"cannot verify: {error}") from None
        else:
            if not info["verify"].ok:
                failure = "verification failed: " + "; ".join(
                    " ".join(line.split())
                    for line in info["verify"].lines()
                    if line.startswith("BAD")
                )
    if effective is not None:
        weights, label, seed = effective
        try:
            info["effective"] = network.effective_receptive_field(net, weights, seed=seed, at=at)
        except ValueError as error:
            raise click.UsageError(f"effective receptive field: {error}") from None
        info["weights"] = label
    if fmt == "json":
        import json

        click.echo(json.dumps(rfreport.network_json(info), indent=2))
    elif fmt == "csv":
        tables.print_rows(rfreport.network_csv_rows(info), ("figure", "height", "width"), fmt)
    else:
        rows, columns = rfreport.network_layer_rows(info, ndim, short=fmt == "table")
        left = ("item", "layer", "figure", "value")
        title = rfreport.network_title(info)
        tables.print_rows(rows, columns, fmt, title=title, left=left)
        click.echo()
        rows, columns, notes = rfreport.network_figures(info, ndim)
        tables.print_rows(rows, columns, fmt, left=left)
        if notes:
            click.echo()
            tables.print_rows(notes, ("figure", "value"), fmt, left=left)
    for line in rfreport.network_warnings(info, ndim):
        color = False if os.environ.get("NO_COLOR") else None
        click.secho(line, fg="yellow", err=True, color=color)
    if failure:
        raise click.ClickException(failure)
    if verify:
        checks = info["verify"].checks
        click.echo(
            f"verified: an impulse through the linear skeleton with dilcli's engine agrees "
            f"on size, centre, jump, box and coverage ({len(checks)} checks)",
            err=True,
        )


def _weights_choice(weights, seed):
    """``(weights for effective_receptive_field, label)`` from --weights."""
    if weights in (None, "random"):
        return "random", f"random (seed {seed})" if seed else "random"
    if weights == "uniform":
        return "uniform", "uniform"
    from dilcli.io.weights import read_network_weights

    try:
        return read_network_weights(weights), os.path.basename(weights)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--weights'") from None


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
        width = channels or DEFAULT_CONTEXT_CHANNELS
        layers, pairs = receptive.context_module(large=large, channels=width)
        return (
            layers,
            pairs,
            f"Context module, {'large' if large else 'basic'} (Table 1), C = {width}",
        )
    if preset == "seed":
        return (
            receptive.make_stack(SEED_DILATIONS, kernels=3),
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
    callback=_preset_callback,
    shell_complete=_complete_presets,
    default=None,
    help=(
        "context-basic/-large: the paper's Table 1 (3x3 at 1,1,2,4,8,16,1, then 1x1); "
        "seed: 3x3 at 1,2,4,8; wavenet: kernel 2 at 1,2,...,512 (1-D). Networks, each "
        f"with its source: {', '.join(NETWORK_PRESETS)}; options after a colon, e.g. "
        "wavenet:layers=10,stacks=3, tcn:levels=4,kernel=2, hdc:rates=1-2-5,repeat=2."
    ),
)
@click.option(
    "--repeat",
    type=click.IntRange(1, MAX_WAVENET_REPEAT),
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
@network_options
@click.option(
    "--input-size",
    callback=_pair_callback("the input size"),
    default=None,
    help="Networks: the input H,W (or N); warns when the receptive field is larger.",
)
@click.option(
    "--pixel-size",
    default=None,
    help="Networks: one input pixel's size, e.g. 0.5um (nm, um, mm, cm, m): the RF in it.",
)
@click.option(
    "--rate",
    default=None,
    help="Networks: the sample rate, e.g. 16000 or 16kHz: the RF in milliseconds.",
)
@click.option(
    "--verify",
    is_flag=True,
    help=(
        "Networks: push impulses through the linear skeleton with dilcli's own engine and "
        "check size, centre, jump, box and coverage (exit 1 if any disagrees)."
    ),
)
@click.option(
    "--effective",
    is_flag=True,
    help=(
        "Networks: the effective receptive field (Luo et al. 2016): RepLKNet's squares "
        "holding 20/30/50/99% of it and a Gaussian fit."
    ),
)
@effective_weight_options
@_rf_options
def rf_table(
    dilations,
    kernels,
    strides,
    channels,
    preset,
    repeat,
    compare,
    network_file,
    onnx_file,
    spec,
    at,
    input_size,
    pixel_size,
    rate,
    verify,
    effective,
    network_weights,
    seed,
    one_d,
    fmt,
):
    """Receptive field, coverage and parameters of a stack of dilated layers, or of a
    whole network.

    A stack (-d, or the presets context-basic, context-large, seed, wavenet): one row
    per layer: span of its dilated kernel, jump (output spacing in input pixels),
    receptive field, growth, coverage (share of the receptive-field box whose pixels
    reach the centre output; below 100% the stack has holes), parameters and the
    Hybrid Dilated Convolution rule (M_i, and what the rule says for the layers so far:
    pass, fail on a common factor, not met, or n/a where it decides nothing; it is a
    sufficient condition only, so coverage decides). Holes are reported on stderr with a
    hole-free schedule to use instead.

    A network (--network, --spec, a network --preset, or any of --at, --input-size,
    --pixel-size, --rate, --verify, --effective): the receptive field, jump and centre
    after every layer, then per axis the receptive field, the exact input box of
    output --at, coverage, units, and what --verify and --effective found.

    \b
    Examples:
      dilcli rf-table -k 3 -d 1,1,2,4,8,16,1
      dilcli rf-table --preset context-large --channels 21 --format markdown
      dilcli rf-table -d 2,2,2 --compare
      dilcli rf-table --preset wavenet --repeat 3 --format json
      dilcli rf-table --preset resnet50 --verify --input-size 224
      dilcli rf-table --spec 'conv3,[conv3/d2,conv3/d2]+,pool2/s2' --at 3,5
      dilcli rf-table --network net.json --pixel-size 0.5um --format json
      dilcli rf-table --preset wavenet:layers=10,stacks=3 --rate 16kHz
    """
    from dilcli.core import receptive
    from dilcli.render import rfreport, tables

    network_only = [
        name
        for name, value in (
            ("--at", at),
            ("--input-size", input_size),
            ("--pixel-size", pixel_size),
            ("--rate", rate),
            ("--verify", verify),
            ("--effective", effective),
        )
        if value
    ]
    if network_weights and not effective:
        raise click.UsageError("--weights is for --effective")
    files = (network_file, onnx_file)
    if network_only or _network_path(files, spec, preset, dilations):
        if compare or channels:
            raise click.UsageError("--compare and --channels are for stacks, not networks")
        if pixel_size and rate:
            raise click.UsageError("give --pixel-size or --rate, not both")
        if rate is not None and rate.strip().isdigit():
            rate = f"{rate.strip()}Hz"
        net, ndim = _build_network(files, spec, preset, dilations, kernels, strides, repeat, one_d)
        if rate is not None:
            ndim = 1
        _network_report(
            net,
            ndim,
            fmt,
            at=at,
            input_size=input_size,
            pixel_size=pixel_size,
            rate=rate,
            verify=verify,
            effective=(*_weights_choice(network_weights, seed), seed) if effective else None,
        )
        return

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
        size = size_text(field, ndim)

        def display(row):
            shown = dict(row, params=f"{row['params']:,}")
            shown["rf"] = size_text(row["rf"], ndim)
            if row["coverage"] is not None:
                shown["coverage"] = receptive.share_text(round(row["coverage"] * 10**6), 10**6)
            return shown

        columns = ("design", "layers", "params", "rf", "resolution", "coverage")
        tables.print_rows(
            table, columns, fmt, title=f"Ways to a {size} receptive field", display=display
        )
    else:
        columns = rfreport.columns_for(rows, channel_spec, fmt)
        display = rfreport.row_display(ndim)
        tables.print_rows(
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
    "--kernel-size",
    "--kernel",
    "kernel",
    cls=Renamed,
    old=("--kernel",),
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
    from dilcli.render import rfreport, tables

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
        tables.print_rows(results, None, fmt)
    elif fmt == "csv":
        flat = [
            {"schedule": number, **row}
            for number, result in enumerate(results, 1)
            for row in result["layers"]
        ]
        tables.print_rows(flat, tuple(flat[0]), fmt)
    else:
        for number, result in enumerate(results, 1):
            size = size_text(result["rf"], ndim)
            title = f"{number}. -d {','.join(map(str, result['dilations']))}: {size}, no holes"
            rows = result["layers"]
            columns = rfreport.columns_for(rows, channels, fmt)
            display = rfreport.row_display(ndim)
            tables.print_rows(
                rows, columns, fmt, title=title, display=display, headers=rfreport.RF_HEADERS
            )
            if number < len(results):
                click.echo()
    fewer = kernel ** (depth - 1)
    if depth > 1 and fewer < target:
        what = size_text(kernel, ndim) if ndim == 2 else f"kernel {kernel}"
        most = size_text(fewer, ndim)
        click.echo(
            f"{depth} layers are the fewest: {depth - 1} layers of {what} "
            f"reach at most {most} without holes",
            err=True,
        )


@cli.command("rf-map")
@layer_options(required=False, example="2,2,2 or 1,2,5", kernel_default="3, or the --taps size")
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
    "--taps",
    "weights_spec",
    default=None,
    help=(
        "--effective: every layer's tap weights, a named kernel or text like "
        "'1,2,1;2,4,2;1,2,1' [default: uniform]; magnitudes are shown."
    ),
)
@network_options
@click.option(
    "--preset",
    callback=_preset_callback,
    shell_complete=_complete_presets,
    default=None,
    help="A network preset, as in rf-table (e.g. resnet50, deeplab-v2-aspp-l, tcn:levels=4).",
)
@effective_weight_options
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
def rf_map(
    dilations,
    kernels,
    strides,
    output,
    effective,
    weights_spec,
    network_file,
    onnx_file,
    spec,
    at,
    preset,
    network_weights,
    seed,
    one_d,
    causal,
):
    """Draw which input pixels reach the centre output, one panel per layer; or, for a
    network, the input pixels one output reads and its effective receptive field.

    Holes of a gridded stack show as pale cells. --effective shades the pixels by
    their weight on the output; --1d draws the dependency diagram of one output sample.
    For a network (--network, --spec, --preset), --effective adds the effective
    receptive field (Luo et al. 2016) with RepLKNet's squares holding 20/30/50/99% of
    it and the Gaussian fit's 1-sigma ellipse.

    \b
    Examples:
      dilcli rf-map -d 2,2,2 -o gridding.png
      dilcli rf-map -d 1,2,5 --effective -o erf.png
      dilcli rf-map -k 2 -d 1,2,4,8 --1d --causal -o wavenet.png
      dilcli rf-map --preset deeplab-v2-aspp-l --effective -o aspp.png
      dilcli rf-map --spec 'conv3,[conv3,conv3]+' --effective --weights w.npz -o res.png
    """
    from dilcli.core import receptive

    if not output.lower().endswith(RF_MAP_SUFFIXES):
        raise click.BadParameter(
            "rf-map writes PNG: name the file *.png", param_hint="'-o' / '--output'"
        )
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise click.BadParameter(f"folder {folder} does not exist", param_hint="'-o' / '--output'")
    if network_weights and not (
        network_weights in ("random", "uniform") or network_weights.lower().endswith(".npz")
    ):
        # Before 0.3 --weights meant --taps here: tap weights as text or a kernel name.
        if weights_spec:
            raise click.UsageError("give the tap weights once, with --taps")
        weights_spec, network_weights = network_weights, None
    files = (network_file, onnx_file)
    if any(files) or spec or preset or at:
        if one_d or causal or weights_spec:
            raise click.UsageError("--1d, --causal and --taps are for -d stacks")
        layers = (dilations, kernels, strides)
        _network_map(files, spec, preset, layers, output, at, effective, network_weights, seed)
        return
    if network_weights:
        raise click.UsageError("--weights is for networks (--network, --spec, --preset)")
    if not dilations:
        raise click.UsageError("give -d/--dilations, or a network (--network, --spec, --preset)")
    if causal and not one_d:
        raise click.UsageError("--causal is for --1d diagrams")
    if weights_spec and not effective:
        raise click.UsageError("--taps is for --effective")
    weights = None
    if weights_spec:
        kernel = load_kernel_option(weights_spec, ndim=1 if one_d else 2)
        if kernel.is_gradient_pair or len(set(kernel.shape)) != 1:
            raise click.BadParameter(
                f"{weights_spec}: give one square kernel", param_hint="'--taps'"
            )
        if kernels and set(kernels) != {kernel.shape[0]}:
            raise click.BadParameter(
                f"{weights_spec} is {kernel.shape[0]} wide "
                f"but -k says {','.join(map(str, kernels))}",
                param_hint="'--taps'",
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
    field = receptive.receptive_fields(layers)[-1]
    _save_picture(picture, output, size_text(field, 1 if one_d else 2))


def _save_picture(picture, output, size):
    """Write the rf-map picture and say so on stderr; one line if it cannot be written."""
    from dilcli.batch.console import display_path
    from dilcli.render import rfmap

    try:
        rfmap.save_png(picture, output)
    except OSError as error:
        raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
    click.echo(
        f"wrote {display_path(output)} "
        f"({picture.width}x{picture.height} px; receptive field {size})",
        err=True,
    )


def _network_map(files, spec, preset, layers, output, at, effective, weights, seed):
    """rf-map for a network (or a ``(dilations, kernels, strides)`` stack with --at): its
    footprint (and effective receptive field) as a PNG."""
    from dilcli.core import network

    net, _ = _build_network(files, spec, preset, *layers, None, False)
    at = at or (0, 0)
    erf = None
    try:
        if effective:
            chosen, label = _weights_choice(weights, seed)
            erf = (network.effective_receptive_field(net, chosen, seed=seed, at=at), label)
        elif weights:
            raise click.UsageError("--weights is for --effective")
        from dilcli.render import rfmap

        picture = rfmap.network_picture(net, at=at, effective=erf)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    from dilcli.render.rfreport import number_text

    _save_picture(picture, output, "x".join(number_text(field.size) for field in net.field))
