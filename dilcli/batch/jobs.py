"""What one input file becomes: the per-file work of each command, as picklable jobs.

A job names its outputs, states the parameters that change them, and runs on one
input (see :mod:`dilcli.batch`). Jobs hold no open files or terminals, so worker
processes and cluster workers can run them.
"""

from __future__ import annotations

import os
from dataclasses import InitVar, dataclass, fields, is_dataclass

import numpy as np

from dilcli.core.kernels import Kernel
from dilcli.core.layers import Layer, relu_keyword
from dilcli.io import images, png
from dilcli.render import display
from dilcli.render.display import Rendering
from dilcli.vocab import (
    CONTEXT_MODULES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_SEED,
    shape_text,
)

# What ContextJob runs: the paper's module, a kernel stack, random kernels, trained
# weights, or the starlet.
STACKS = (*CONTEXT_MODULES, "kernel", "random", "weights", "starlet")


def frame_stems(stem, frames=None):
    """The stem of each frame's outputs: ``stem``, or ``{stem}_f{n}`` for every frame.

    ``n`` counts from 0, zero-padded to one width per file (``_f00`` .. ``_f12``), so
    names sort in frame order.
    """
    if frames is None:
        return [stem]
    width = len(str(max(frames - 1, 0)))
    return [f"{stem}_f{n:0{width}d}" for n in range(frames)]


# Fields that decide whether (and how) an input is read, never what is written.
LIMIT_FIELDS = ("max_pixels", "max_frames", "max_samples", "max_memory")
# Fields that choose only the outputs' names (which the record keeps apart anyway).
NAME_ONLY_FIELDS = ("name_template",)


class Job:
    """What every job shares: the signature that resume compares, and output names.

    A job's per-scale outputs are named by ``name_template`` (``--name``), or by its
    ``DEFAULT_NAME``: a :meth:`str.format` template of the fields in ``NAME_FIELDS``,
    the extension added. Montages and plots keep their own names.
    """

    NAME_FIELDS = {}  # field -> what it is, for messages and docs

    def __post_init__(self):
        self._check_name_template()

    #: Renamed fields keep their old key, so resume knows the outputs of earlier versions.
    SIGNATURE_NAMES = {}

    def signature(self):
        """Every field but the limits, as JSON values: what makes the outputs' bytes."""
        values = _signature_value(self)
        ignored = (*LIMIT_FIELDS, *NAME_ONLY_FIELDS)
        return {
            "job": type(self).__name__,
            **{self.SIGNATURE_NAMES.get(k, k): v for k, v in values.items() if k not in ignored},
        }

    def _name(self, default, fields):
        """One output's name (no extension): the --name template, else ``default``."""
        template = getattr(self, "name_template", None) or default
        return template.format(**fields)

    def _frame_fields(self, stem, frames):
        """``(stem, frame)`` per frame: with several frames, ``_f{n}`` follows the stem
        unless the template places ``{frame}`` itself."""
        template = getattr(self, "name_template", None) or ""
        if frames is not None and "{frame" in template:
            width = len(str(max(frames - 1, 0)))
            return [(stem, f"{n:0{width}d}") for n in range(frames)]
        return [(part, "0") for part in frame_stems(stem, frames)]

    def _check_name_template(self):
        """A ValueError (one line) for a --name template that is not a name, names an
        unknown field, or gives two outputs of one input the same name."""
        import string

        template = getattr(self, "name_template", None)
        if template is None:
            return
        known = ", ".join("{" + name + "}" for name in self.NAME_FIELDS)
        try:
            used = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as error:
            raise ValueError(f"--name {template!r}: {error} (write fields as {known})") from None
        unknown = [f for f in used if f not in self.NAME_FIELDS]
        if unknown:
            raise ValueError(
                f"--name {template!r}: unknown field {{{unknown[0]}}}; fields: {known}"
            )
        if "stem" not in used:
            raise ValueError(
                f"--name {template!r} needs {{stem}}: without it, the outputs of different "
                "inputs would share names"
            )
        if "/" in template or "\\" in template or "\0" in template:
            raise ValueError(f"--name {template!r}: a file name, without folders")
        frames = 3 if getattr(self, "frames", "first") == "all" else None
        try:
            names = self.output_names("{stem}", ".png", frames=frames)
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ValueError(f"--name {template!r}: {error}") from None
        repeated = [name for name in names if names.count(name) > 1]
        if repeated:
            raise ValueError(
                f"--name {template!r} gives two outputs of one input the same name "
                f"({repeated[0]}); add a field that tells them apart ({{layer}} always does)"
            )

    def plan_details(self, input_path):
        """What a dry run shows of this input besides its outputs: ``{label: value}``
        (say, tiles and working memory); none by default."""
        return {}

    def output_scopes(self, names):
        """For each of ``names`` (as :meth:`output_names` gave them), the part of the
        signature that does not make it: ``{field: None}`` for a field it ignores, or a
        narrower value. Runs that agree on an output's scope write it byte for byte
        alike, so extending ``-d 1,2`` to ``-d 1,2,4`` is not another run's output."""
        return [{} for _ in names]


def _signature_value(value):
    if isinstance(value, Layer):  # the keys of dilcli 0.1's layers, and what is new
        keys = {"weights": value.weights, "dilation": value.dilation, "bias": value.bias}
        keys["truncate"] = value.relu
        if value.activation == "tanh" or value.stride != 1:
            keys.update(activation=value.activation, stride=value.stride)
        return {key: _signature_value(item) for key, item in keys.items()}
    if isinstance(value, Kernel):
        return {"name": value.name, "weights": [p.tolist() for p in value.parts]}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _signature_value(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, np.ndarray):  # trained weights: a digest, not the numbers
        import hashlib

        data = np.ascontiguousarray(value)
        return f"{data.dtype.str}{data.shape}:{hashlib.sha256(data.tobytes()).hexdigest()}"
    if isinstance(value, (tuple, list)):
        return [_signature_value(v) for v in value]
    return value


class ImageInput(Job):
    """How a job reads its images: limits, damaged files and frames.

    Mixed into jobs that have the fields ``max_pixels``, ``allow_truncated``,
    ``frames`` (``"first"`` or ``"all"``) and ``max_frames``.
    """

    def run(self, input_path, output_paths):
        """Each frame through ``_run_image``, or the image in bands when it is over
        ``max_memory`` and can be read in parts (:mod:`dilcli.batch.streamed`: the one
        place that decides); returns the decoder's warnings."""
        from dilcli.batch import streamed

        decision, reader = streamed.decide(self, input_path)
        if reader is not None:
            with reader:
                run = streamed.run_streamed(self, input_path, reader, decision.budget, output_paths)
                return [*run, *self._first_frame_note(reader.frames)]
        if decision.whole_bytes > decision.budget and not self.max_pixels:
            # --montage or --map stretch past --max-memory, and no pixel limit (--max-pixels
            # 0) to bound the whole read they need instead.
            need, _ = streamed.whole_image_need(self)
            raise images.ImageError(
                f"{need} in memory, {streamed.bytes_text(decision.whole_bytes)}, over "
                f"--max-memory ({streamed.bytes_text(decision.budget)}): raise it, or drop them"
            )
        notes, frames = [], 1
        max_pixels = self.max_pixels if decision.pixel_limit else 0
        try:
            for image, paths in self.each_frame(input_path, output_paths, max_pixels=max_pixels):
                notes += image.notes
                frames = image.frames
                self._run_image(image, paths)
        except images.PixelLimitError as error:
            raise streamed.over_pixel_limit(error, decision, input_path) from None
        return notes + self._first_frame_note(frames)

    def _first_frame_note(self, frames):
        """A note if the file has ``frames`` beyond the first, which were not read."""
        from dilcli.batch.tasks import Note

        if self.frames == "all" or frames < 2:
            return []
        return [Note(f"only the first of its {frames} frames was used (--frames all: every frame)")]

    def plan_details(self, input_path):
        """How ``input_path`` would run, if in bands: a dict with ``streamed`` (True),
        ``shape``, ``whole_image_bytes``, ``max_memory``, ``band_rows``, ``bands``,
        ``halo`` (input rows read above and below a band), ``working_memory`` (bytes,
        an estimate) and ``outputs``; ``{}`` for an input read whole."""
        from dilcli.batch import streamed

        return streamed.plan_details(self, input_path)

    def check_max_memory(self):
        """``max_memory``: None (the default) or a positive number of bytes."""
        value = self.max_memory
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_memory must be a positive number of bytes, got {value!r}")

    def needs_whole_image(self):
        """Options that need every pixel at once: ``--montage``, ``--map stretch``."""
        return bool(self.whole_image_options())

    def whole_image_options(self):
        names = ["--montage"] if self.montage else []
        if self.rendering.mapping == "stretch":
            names.append("--map stretch")
        return " and ".join(names)

    def band_to_file(self, response, output, input_bits, alpha):
        """A band of ``response`` rows as its file takes them: pixels (with ``alpha``
        when it has their rows and columns) or float32, as the whole-image path."""
        if output.squeeze and response.ndim == 3 and response.shape[2] == 1:
            response = response[..., 0]
        if not self.rendering.writes_pixels:
            return np.asarray(response, np.float32)
        bits = self.rendering.pixel_bits(input_bits)
        pixels = self.rendering.pixels(_displayable(response), output.shown, bits, consume=True)
        return display.with_alpha(pixels, display.matching_alpha(alpha, pixels))

    def count_frames(self, path):
        """Frames to write outputs for, with ``frames="all"``; else None (the first only)."""
        if self.frames != "all":
            return None
        try:
            return images.count_frames(
                path, max_frames=self.max_frames, allow_truncated=self.allow_truncated
            )
        except Exception:  # planning goes on; run() meets the same error and reports it
            return 1

    def each_frame(self, input_path, output_paths, *, max_pixels=None):
        """(image, its share of ``output_paths``) for each frame, decoded one at a time,
        within ``max_pixels`` (None: the job's)."""
        max_pixels = self.max_pixels if max_pixels is None else max_pixels
        options = dict(max_pixels=max_pixels, allow_truncated=self.allow_truncated)
        if self.frames != "all":
            yield images.load_image(input_path, **options), output_paths
            return
        count = images.count_frames(
            input_path, max_frames=self.max_frames, allow_truncated=self.allow_truncated
        )
        per_frame, extra = divmod(len(output_paths), count)
        if extra or not per_frame:
            raise images.ImageError(f"has {count} frames now, another count than when planned")
        frames = images.iter_frames(input_path, None, max_frames=self.max_frames, **options)
        decoded = 0
        for index, image in enumerate(frames):
            decoded += 1
            yield image, output_paths[index * per_frame : (index + 1) * per_frame]
        if decoded != count:
            raise images.ImageError(f"has {decoded} frames, not the {count} it claims")


@dataclass(frozen=True)
class ConvolveJob(ImageInput):
    """One dilated kernel at each dilation: ``{stem}_{kernel}_d{d}.{ext}`` per input.

    With ``frames="all"``, one set per frame: ``{stem}_f{n}_{kernel}_d{d}.{ext}``.
    """

    kernel: Kernel
    dilations: tuple
    mode: str = "same"
    boundary: str | None = None
    cval: float = 0.0
    flip: bool = False
    rendering: Rendering = Rendering()
    montage: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_truncated: bool = False
    frames: str = "first"  # or "all"
    max_frames: int = DEFAULT_MAX_FRAMES
    max_memory: int | None = None  # bytes; None: dilcli.batch.streamed.default_max_memory()
    name_template: str | None = None  # --name; None: DEFAULT_NAME

    DEFAULT_NAME = "{stem}_{kernel}_d{d}"
    NAME_FIELDS = {
        "stem": "the input's name without extension",
        "ext": "the input's extension (png, jpg)",
        "kernel": "the kernel's name",
        "d": "the dilation",
        "layer": "the dilation's place in -d, from 1",
        "frame": "the frame number, with --frames all",
    }

    def __post_init__(self):
        self.check_max_memory()
        super().__post_init__()

    def whole_image_bytes(self, shape):
        """The whole-image path's working set: the input, two responses (one being
        computed, one being written), the second part of a gradient pair, the pixels."""
        values = int(np.prod(shape, dtype=np.int64)) * 4
        return values * (4 + (len(self.kernel.parts) > 1))

    def stream_steps(self, shape, bits):
        """The steps of :mod:`dilcli.core.tiling`, the outputs emitted, the files."""
        from dilcli.batch.streamed import Output
        from dilcli.core.tiling import KernelStep

        options = dict(
            mode=self.mode, boundary=self.boundary or "reflect", cval=self.cval, flip=self.flip
        )
        steps = tuple(KernelStep(self.kernel, d, **options) for d in self.dilations)
        outputs = [Output((n,), self._display(d)) for n, d in enumerate(self.dilations, 1)]
        return steps, frozenset(range(1, len(steps) + 1)), outputs

    def _display(self, dilation):
        """How the output at ``dilation`` is shown without --map: the same for every
        input (render/display.py); none for exact float outputs."""
        if not self.rendering.writes_pixels:
            return display.DefaultDisplay()
        return display.kernel_display(self.kernel, dilation)

    def output_names(self, stem, suffix="", frames=None):
        ext = self.rendering.extension()
        names = []
        # A montage keeps its own name, {stem}_f{n}_..., even when --name places {frame}.
        for (part, frame), own in zip(self._frame_fields(stem, frames), frame_stems(stem, frames)):
            fields = dict(stem=part, ext=suffix.lstrip("."), kernel=self.kernel.name, frame=frame)
            names += [
                f"{self._name(self.DEFAULT_NAME, {**fields, 'd': d, 'layer': i})}.{ext}"
                for i, d in enumerate(self.dilations, 1)
            ]
            if self.montage:
                names.append(f"{own}_{self.kernel.name}_montage.png")
        return names

    def output_scopes(self, names):
        # {stem}_{kernel}_d{d}.{ext}: one dilation; the montage shows them all.
        per_frame = len(self.dilations) + bool(self.montage)
        scopes = []
        for index in range(len(names)):
            position = index % per_frame
            if position < len(self.dilations):
                scopes.append({"dilations": [self.dilations[position]], "montage": None})
            else:
                scopes.append({})
        return scopes

    def _run_image(self, image, output_paths):
        from concurrent.futures import ThreadPoolExecutor

        from dilcli.core.conv import apply_kernel

        options = dict(mode=self.mode, boundary=self.boundary, cval=self.cval, flip=self.flip)
        shown = []  # 8- or 16-bit pixels of each dilation, for the montage

        def collect(pixels):
            if self.montage and pixels is not None:
                shown.append(pixels)

        # Decode once; compute each dilation while the previous one is encoded. One
        # write in flight at most, so memory stays bounded by about three images.
        from dilcli.core.parallel import threads

        with (
            ThreadPoolExecutor(1, thread_name_prefix="dilcli-writer")
            if threads() > 1
            else _Inline() as writer
        ):
            pending = None
            for dilation, path in zip(self.dilations, output_paths):
                with np.errstate(over="ignore", invalid="ignore"):  # huge float input: Inf
                    response = apply_kernel(image.data, self.kernel, dilation, **options)
                look = display.kernel_display(self.kernel, dilation)  # the same for every input
                if self.rendering.writes_pixels:  # feature maps: pixels show the channel mean
                    response = _displayable(response)
                elif self.montage:
                    collect(self.rendering.pixels(_displayable(response), look))
                if pending is not None:
                    collect(pending.result())
                pending = writer.submit(
                    self.rendering.save, path, response, image, look, consume=True
                )
            collect(pending.result())
        if self.montage:
            from dilcli.render.panels import montage

            panels = [("input", display.quantize(np.clip(_displayable(image.data), 0, 1), 8))]
            panels += [
                (f"{self.kernel.name}, d={d}", pixels) for d, pixels in zip(self.dilations, shown)
            ]
            png.save_pixels(output_paths[-1], montage(panels))


class _Inline:
    """An executor that runs each call at once: one core, nothing to overlap."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, function, *args, **kwargs):
        from concurrent.futures import Future

        future = Future()
        future.set_result(function(*args, **kwargs))
        return future


def _displayable(data):
    """Feature maps with other than 1 or 3 channels are shown by their mean."""
    if data.ndim == 3 and data.shape[2] not in (1, 3):
        return data.mean(axis=2)
    return data


@dataclass(frozen=True)
class ContextJob(ImageInput):
    """A stack of dilated layers: what every scale sees, per input.

    ``stack`` is ``context-basic`` or ``context-large`` (Table 1, identity-initialised
    for the input's channel count), ``kernel`` (``kernel`` at each dilation, per
    channel), ``random`` (the seed's small random kernels, shaped like ``kernel``),
    ``weights`` (``layers`` from a weights file named ``weights_name``) or ``starlet``
    (à trous planes, ``len(dilations)`` levels). Outputs are
    ``{stem}_context_l{i}_d{d}.{ext}`` per layer, or ``{stem}_starlet_w{j}.{ext}`` per
    plane and ``{stem}_starlet_c{J}.{ext}``; ``final_only`` keeps the last one.
    """

    stack: str
    dilations: tuple
    kernel: Kernel | None = None
    layers: tuple = ()
    weights_name: str = ""
    seed: int = DEFAULT_SEED
    relu: bool | None = None  # None: ReLUs for presets and weights, none for kernels
    mode: str = "same"
    boundary: str | None = None
    cval: float = 0.0
    flip: bool = False
    rendering: Rendering = Rendering()
    montage: bool = False
    final_only: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_truncated: bool = False
    frames: str = "first"  # or "all": {stem}_f{n}_... per frame
    max_frames: int = DEFAULT_MAX_FRAMES
    name_template: str | None = None  # --name; None: DEFAULT_NAME
    max_memory: int | None = None  # bytes; None: dilcli.batch.streamed.default_max_memory()
    truncate: InitVar[bool | None] = None  # relu's deprecated name

    DEFAULT_NAME = "{stem}_{prefix}_{scale}"
    NAME_FIELDS = {
        "stem": "the input's name without extension",
        "ext": "the input's extension (png, npy)",
        "prefix": "context, or starlet",
        "stack": "the preset, the -k kernel, random, or the --weights file's stem",
        "scale": "l{i}_d{d} per layer; w{j} per starlet plane, c{J} its residual",
        "layer": "the layer (starlet: plane) number, from 1",
        "d": "the layer's dilation",
        "frame": "the frame number, with --frames all",
    }

    SIGNATURE_NAMES = {"relu": "truncate"}

    def __post_init__(self, truncate):
        """The library's rules, whoever builds the job (the CLI only rewords them)."""
        object.__setattr__(self, "relu", relu_keyword(self.relu, truncate, stacklevel=4))
        self.check_max_memory()
        if self.stack not in STACKS:
            raise ValueError(f"stack must be one of {', '.join(STACKS)}; got {self.stack!r}")
        if self.stack in ("kernel", "random") and self.kernel is None:
            raise ValueError(f"stack {self.stack!r} needs a kernel")
        if self.stack == "kernel":
            self.kernel.stack_weights()  # one kernel, not a gradient pair
        if self.stack == "starlet":
            if self.mode != "same":
                raise ValueError(
                    "the starlet needs mode 'same' (its planes are differences of images)"
                )
            if self.relu is not None:
                raise ValueError("the starlet is linear: relu (a ReLU) does not apply")
        super().__post_init__()

    @property
    def prefix(self):
        return "starlet" if self.stack == "starlet" else "context"

    def scale_names(self):
        """Name parts of every scale, in order: ``l{i}_d{d}``, or ``w{j}`` and ``c{J}``."""
        if self.stack == "starlet":
            levels = len(self.dilations)
            return [f"w{j}" for j in range(1, levels + 1)] + [f"c{levels}"]
        return [f"l{i}_d{d}" for i, d in enumerate(self.dilations, 1)]

    def output_names(self, stem, suffix="", frames=None):
        ext = self.rendering.extension()
        scales = list(enumerate(self.scale_names(), 1))
        scales = scales[-1:] if self.final_only else scales
        dilations = (*self.dilations, self.dilations[-1])  # a starlet's residual: its last
        if self.stack in ("kernel", "random") and self.kernel is not None:
            stack = self.kernel.name if self.stack == "kernel" else "random"
        else:
            stack = os.path.splitext(self.weights_name)[0] if self.weights_name else self.stack
        names = []
        for (part, frame), own in zip(self._frame_fields(stem, frames), frame_stems(stem, frames)):
            fields = dict(stem=part, ext=suffix.lstrip("."), prefix=self.prefix, stack=stack)
            for layer, scale in scales:
                values = {**fields, "scale": scale, "layer": layer, "d": dilations[layer - 1]}
                names.append(f"{self._name(self.DEFAULT_NAME, {**values, 'frame': frame})}.{ext}")
            if self.montage:
                names.append(f"{own}_{self.prefix}_montage.png")
        return names

    def output_scopes(self, names):
        # Scale i sees the layers up to its own (a starlet's residual: all of them).
        scales = len(self.scale_names()[-1:] if self.final_only else self.scale_names())
        per_frame = scales + bool(self.montage)
        first = len(self.scale_names()) - scales
        scopes = []
        for index in range(len(names)):
            position = index % per_frame
            if position < scales and self.stack != "weights":
                used = list(self.dilations[: first + position + 1])
                scopes.append({"dilations": used, "final_only": None, "montage": None})
            else:
                scopes.append({"montage": None} if position < scales else {})
        return scopes

    def build_layers(self, channels):
        """The stack for an input with ``channels`` channels."""
        from dilcli.core import stacks

        relu = self.relu
        if relu is None:  # Table 1's ReLUs for the paper's module; the seed's stacks are linear
            relu = self.stack in CONTEXT_MODULES
        if self.stack == "context-basic":
            return stacks.context_basic(channels, relu=relu)
        if self.stack == "context-large":
            return stacks.context_large(channels, seed=self.seed, relu=relu)
        if self.stack == "kernel":
            return stacks.kernel_stack(self.kernel.stack_weights(), self.dilations, relu=relu)
        if self.stack == "random":
            size = self.kernel.shape
            return stacks.random_stack(self.dilations, size=size, seed=self.seed, relu=relu)
        if self.stack == "weights":
            return list(self.layers)
        if self.stack == "starlet":
            return stacks.starlet_layers(len(self.dilations))
        raise ValueError(f"unknown stack {self.stack!r}")

    def checked_layers(self, channels):
        """:meth:`build_layers`, with a channel count that does not fit named."""
        from dilcli.core import stacks

        layers = self.build_layers(channels)
        try:
            stacks.check_channels(channels, layers)
        except stacks.ChannelError as error:
            where = f" in {self.weights_name}" if self.weights_name else ""
            raise stacks.ChannelError(f"{error}{where}") from None
        return layers

    def whole_image_bytes(self, shape):
        """The whole-image path's working set: the input and every starlet plane, or
        the input and four maps of the widest layer (previous, current, its file, a
        padded copy)."""
        from dilcli.core.tiling import BandPlan, chain

        pixels = int(shape[0]) * int(shape[1])
        channels = shape[2] if len(shape) == 3 else 1
        if self.stack == "starlet":
            return pixels * channels * 4 * (len(self.dilations) + 3)
        layers = self.checked_layers(channels)
        options = dict(mode=self.mode, boundary=self.boundary or "reflect")
        shapes = BandPlan(chain(layers, **options), tuple(shape), frozenset(), 1).shapes
        widest = max(int(np.prod(s, dtype=np.int64)) for s in shapes[1:])
        return pixels * channels * 4 + 4 * widest * 4

    def stream_steps(self, shape, bits):
        """The steps of :mod:`dilcli.core.tiling`, the outputs emitted, the files, for
        an input of ``shape`` and ``bits`` (32: float data, which may be negative)."""
        from dilcli.batch.streamed import Output
        from dilcli.core.tiling import chain

        channels = shape[2] if len(shape) == 3 else 1
        layers = self.checked_layers(channels)
        count = len(layers)
        boundary = self.boundary or "reflect"
        shown = self.displays(layers, channels, input_negative=bits == 32)
        if self.stack == "starlet":
            steps = chain(layers, boundary=boundary, cval=self.cval)
            outputs = [Output((j - 1, j), shown[j - 1]) for j in range(1, count + 1)]
            outputs.append(Output((count,), shown[count]))
        else:
            options = dict(mode=self.mode, boundary=boundary, cval=self.cval, flip=self.flip)
            steps = chain(layers, **options)
            outputs = [Output((n,), look, len(shape) == 2) for n, look in enumerate(shown, 1)]
        if self.final_only:
            outputs = outputs[-1:]
        emit = frozenset(n for output in outputs for n in output.sources)
        return steps, emit, outputs

    def displays(self, layers, channels, *, input_negative):
        """How each scale is shown without --map, from the stack alone, the same for
        every input (render/display.py); none for exact float outputs."""
        if self.stack == "starlet":
            return display.starlet_displays(len(layers), input_negative=input_negative)
        if self.rendering.writes_pixels or self.montage:
            return display.stack_displays(layers, channels, input_negative=input_negative)
        return [display.DefaultDisplay()] * len(layers)

    def receptive_field_sizes(self, layers):
        """(rows, columns) of each layer's receptive field: the layers that run, measured."""
        from dilcli.core.receptive import receptive_field_shapes

        return receptive_field_shapes(layers)

    def _run_image(self, image, output_paths):
        from dilcli.core import stacks

        data = image.data
        channels = 1 if data.ndim == 2 else data.shape[2]
        layers = self.checked_layers(channels)
        # Float data (.npy, float TIFF) may be negative; decoded images are not.
        input_negative = image.bits == 32
        boundary = self.boundary or "reflect"
        shown = self.displays(layers, channels, input_negative=input_negative)
        if self.stack == "starlet":
            levels = len(layers)
            planes, residual = stacks.starlet(data, levels, boundary=boundary, cval=self.cval)
            scales = zip([*planes, residual], shown, strict=True)
            labels = [f"w{j} (d={d})" for j, d in enumerate(self.dilations, 1)] + [f"c{levels}"]
        else:
            options = dict(mode=self.mode, boundary=boundary, cval=self.cval, flip=self.flip)
            scales = zip(stacks.iterate_layers(data, layers, **options), shown, strict=True)
            sizes = self.receptive_field_sizes(layers)
            labels = [
                f"l{i} d={layer.dilation} RF {shape_text(size)}"
                for i, (layer, size) in enumerate(zip(layers, sizes, strict=True), 1)
            ]
        count = len(self.scale_names())
        saved = iter(output_paths)
        panels = [("input", display.quantize(np.clip(_displayable(data), 0, 1), 8))]
        for number, ((response, look), label) in enumerate(zip(scales, labels, strict=True), 1):
            if data.ndim == 2 and response.ndim == 3 and response.shape[2] == 1:
                response = response[..., 0]  # one channel in, one channel out
            if number == count or not self.final_only:
                as_file = _displayable(response) if self.rendering.writes_pixels else response
                # Not consume=True: ``response`` feeds the next layer.
                self.rendering.save(next(saved), as_file, image, look)
            if self.montage:
                # Each scale by its own layer's rule and tone scale, as in the files.
                panels.append((label, self.rendering.pixels(_displayable(response), look)))
        if self.montage:
            from dilcli.render.panels import montage

            png.save_pixels(output_paths[-1], montage(panels))


@dataclass(frozen=True)
class SignalJob(Job):
    """A 1-D kernel over a signal file (CSV/TSV/TXT, .npy, WAV), in the input's format.

    Outputs are ``{stem}_{kernel}_d{d}.{ext}`` per dilation, or with ``stack`` (the
    dilations applied one after another, ``activation`` after each layer)
    ``{stem}_{kernel}_stack_l{i}_d{d}.{ext}`` per layer, ``ext`` the input's own;
    ``plot`` is an absolute ``.png`` path (with ``{stem}`` replaced when
    ``plot_per_input``), written last.
    """

    kernel: Kernel
    dilations: tuple
    mode: str = "same"
    boundary: str | None = None
    cval: float = 0.0
    flip: bool = False
    stack: bool = False
    activation: str = "none"
    time_column: str | None = "auto"
    wav_scale: str = "bound"
    plot: str | None = None
    plot_per_input: bool = False
    max_samples: int = DEFAULT_MAX_SAMPLES  # values (samples x channels); 0: no limit
    name_template: str | None = None  # --name; None: DEFAULT_NAME

    DEFAULT_NAME = "{stem}_{kernel}_d{d}"
    DEFAULT_STACK_NAME = "{stem}_{kernel}_stack_l{layer}_d{d}"
    NAME_FIELDS = {
        "stem": "the input's name without extension",
        "ext": "the input's extension (csv, wav)",
        "kernel": "the kernel's name",
        "d": "the dilation",
        "layer": "the dilation's place in -d (the layer of --stack), from 1",
    }

    def __post_init__(self):
        """The library's rules, whoever builds the job (the CLI only rewords them)."""
        from dilcli.core.conv import check_mode_boundary

        check_mode_boundary(self.mode, self.boundary, spatial=1)
        if self.kernel.is_gradient_pair or self.kernel.ndim != 1:
            raise ValueError(f"a signal needs one 1-D kernel; {self.kernel.name} is not")
        if self.activation != "none" and not self.stack:
            raise ValueError("an activation applies between the layers of a stack: add stack=True")
        super().__post_init__()

    def build_layers(self):
        """The layers that run: the stack (``stack``), or one layer per dilation."""
        from dilcli.core.stacks import signal_stack

        kernel, activation = self.kernel.parts[0], self.activation
        return signal_stack(kernel, self.dilations, activation=activation, flip=self.flip)

    def output_names(self, stem, suffix=".npy", frames=None):
        ext = suffix or ".npy"
        default = self.DEFAULT_STACK_NAME if self.stack else self.DEFAULT_NAME
        fields = dict(stem=stem, ext=ext.lstrip("."), kernel=self.kernel.name)
        names = [
            self._name(default, {**fields, "d": d, "layer": i}) + ext
            for i, d in enumerate(self.dilations, 1)
        ]
        if self.plot:
            # An absolute name: the batch planner's ``folder / name`` keeps it as it is.
            names.append(self.plot.replace("{stem}", stem) if self.plot_per_input else self.plot)
        return names

    def output_scopes(self, names):
        # One dilation each, or the layers up to this one of a stack; the plot shows all.
        scopes = []
        for index, _ in enumerate(names):
            if index >= len(self.dilations):
                scopes.append({})
            elif self.stack:
                scopes.append({"dilations": list(self.dilations[: index + 1]), "plot": None})
            else:
                scopes.append({"dilations": [self.dilations[index]], "plot": None})
        return scopes

    def run(self, input_path, output_paths):
        from dilcli.io import signals

        signal = signals.read_signal(
            input_path, time_column=self.time_column, max_samples=self.max_samples
        )
        from dilcli.core.stacks import signal_outputs

        options = dict(mode=self.mode, boundary=self.boundary, cval=self.cval, stack=self.stack)
        layers = signal_outputs(signal.data, self.build_layers(), **options)
        gain = float(np.abs(self.kernel.parts[0]).sum())
        bound = 1.0  # worst case of |y| for an input within full scale
        for layer, path in zip(layers, output_paths, strict=False):
            bound = bound * gain if self.stack else gain
            if self.stack and self.activation == "tanh":
                bound = min(bound, 1.0)
            divisor = 1.0
            if signal.fmt == "wav":
                divisor = signals.wav_divisor(layer.response, self.wav_scale, bound)
            signals.write_signal(path, signal, layer.response, start=layer.start, divisor=divisor)
        if self.plot:
            from dilcli.render.signalplot import signal_plot_pixels

            pixels = signal_plot_pixels(
                signal, layers, self.kernel, self.mode, stack=self.stack, name=str(input_path)
            )
            png.save_pixels(output_paths[-1], pixels)
        return signal.notes
