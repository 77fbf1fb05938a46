"""What one input file becomes: the per-file work of each command, as picklable jobs.

A job names its outputs, states the parameters that change them, and runs on one
input (see :mod:`dilcli.batch`). Jobs hold no open files or terminals, so worker
processes and cluster workers can run them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

import numpy as np

from dilcli.core.kernels import Kernel
from dilcli.io import images, png
from dilcli.render import display
from dilcli.render.display import Rendering
from dilcli.vocab import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, DEFAULT_MAX_SAMPLES, DEFAULT_SEED

# What ContextJob runs: the paper's module, a kernel stack, random kernels, trained
# weights, or the starlet.
STACKS = ("context-basic", "context-large", "kernel", "random", "weights", "starlet")


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


class Job:
    """What every job shares: the signature that resume compares."""

    def signature(self):
        """Every field but the limits, as JSON values: what makes the outputs' bytes."""
        values = _signature_value(self)
        return {
            "job": type(self).__name__,
            **{k: v for k, v in values.items() if k not in LIMIT_FIELDS},
        }

    def output_scopes(self, names):
        """For each of ``names`` (as :meth:`output_names` gave them), the part of the
        signature that does not make it: ``{field: None}`` for a field it ignores, or a
        narrower value. Runs that agree on an output's scope write it byte for byte
        alike, so extending ``-d 1,2`` to ``-d 1,2,4`` is not another run's output."""
        return [{} for _ in names]


def _signature_value(value):
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
                if not self.needs_whole_image() or not self.max_pixels:
                    if self.needs_whole_image():
                        options = self.whole_image_options()
                        verb = "need" if " and " in options else "needs"
                        raise images.ImageError(
                            f"{options} {verb} the whole image in memory, "
                            f"{decision.whole_bytes / 2**20:,.0f} MiB, over --max-memory "
                            f"({decision.budget / 2**20:,.0f} MiB): raise it, or drop them"
                        )
                    return list(
                        streamed.run_streamed(
                            self, input_path, reader, decision.budget, output_paths
                        )
                    )
        notes = []
        try:
            for image, paths in self.each_frame(input_path, output_paths):
                notes += image.notes
                self._run_image(image, paths)
        except images.ImageError as error:
            if "--max-pixels" in str(error) and "decoded whole" in decision.reason:
                raise images.ImageError(
                    f"{error}; {streamed.STREAMED_FORMATS} inputs are read in bands instead"
                ) from None
            raise
        return notes

    def plan_details(self, input_path):
        """How ``input_path`` would run: a dict with ``streamed`` (bool), ``shape``,
        ``whole_image_bytes``, ``max_memory`` and ``reason``; for a streamed input
        also ``band_rows``, ``bands``, ``halo`` (input rows read above and below a
        band) and ``working_memory`` (bytes, an estimate) and ``outputs``."""
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
        pixels = self.rendering.pixels(
            _displayable(response), output.signed, input_bits, consume=True
        )
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

    def each_frame(self, input_path, output_paths):
        """(image, its share of ``output_paths``) for each frame, decoded one at a time."""
        options = dict(max_pixels=self.max_pixels, allow_truncated=self.allow_truncated)
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

    def __post_init__(self):
        self.check_max_memory()

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
        outputs = [Output((n,), self.kernel.is_signed) for n in range(1, len(steps) + 1)]
        return steps, frozenset(range(1, len(steps) + 1)), outputs

    def output_names(self, stem, suffix="", frames=None):
        ext = self.rendering.extension()
        names = []
        for part in frame_stems(stem, frames):
            names += [f"{part}_{self.kernel.name}_d{d}.{ext}" for d in self.dilations]
            if self.montage:
                names.append(f"{part}_{self.kernel.name}_montage.png")
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
                if self.rendering.writes_pixels:  # feature maps: pixels show the channel mean
                    response = _displayable(response)
                elif self.montage:
                    values = display.display_values(_displayable(response), self._montage_mapping())
                    collect(display.quantize(values, 8))
                if pending is not None:
                    collect(pending.result())
                pending = writer.submit(
                    self.rendering.save, path, response, image, self.kernel.is_signed, consume=True
                )
            collect(pending.result())
        if self.montage:
            from dilcli.render.panels import montage

            panels = [("input", display.quantize(np.clip(_displayable(image.data), 0, 1), 8))]
            panels += [
                (f"{self.kernel.name}, d={d}", pixels) for d, pixels in zip(self.dilations, shown)
            ]
            png.save_pixels(output_paths[-1], montage(panels))

    def _montage_mapping(self):
        return self.rendering.mapping or ("abs" if self.kernel.is_signed else "clip")


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
    truncate: bool | None = None  # None: ReLUs for presets and weights, none for kernels
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
    max_memory: int | None = None  # bytes; None: dilcli.batch.streamed.default_max_memory()

    def __post_init__(self):
        """The library's rules, whoever builds the job (the CLI only rewords them)."""
        self.check_max_memory()
        if self.stack not in STACKS:
            raise ValueError(f"stack must be one of {', '.join(STACKS)}; got {self.stack!r}")
        if self.stack == "starlet":
            if self.mode != "same":
                raise ValueError(
                    "the starlet needs mode 'same' (its planes are differences of images)"
                )
            if self.truncate is not None:
                raise ValueError("the starlet is linear: truncate (ReLU) does not apply")

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
        scales = self.scale_names()[-1:] if self.final_only else self.scale_names()
        names = []
        for part in frame_stems(stem, frames):
            names += [f"{part}_{self.prefix}_{scale}.{ext}" for scale in scales]
            if self.montage:
                names.append(f"{part}_{self.prefix}_montage.png")
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

        relu = self.truncate
        if relu is None:  # Table 1's ReLUs for the paper's module; the seed's stacks are linear
            relu = self.stack in ("context-basic", "context-large")
        if self.stack == "context-basic":
            return stacks.context_basic(channels, truncate=relu)
        if self.stack == "context-large":
            return stacks.context_large(channels, seed=self.seed, truncate=relu)
        if self.stack == "kernel":
            return stacks.kernel_stack(self.kernel.parts[0], self.dilations, truncate=relu)
        if self.stack == "random":
            size = self.kernel.shape
            return stacks.random_stack(self.dilations, size=size, seed=self.seed, truncate=relu)
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
        from dilcli.core import stacks
        from dilcli.core.tiling import chain

        channels = shape[2] if len(shape) == 3 else 1
        layers = self.checked_layers(channels)
        count = len(layers)
        boundary = self.boundary or "reflect"
        if self.stack == "starlet":
            steps = chain(layers, boundary=boundary, cval=self.cval)
            outputs = [Output((j - 1, j), True) for j in range(1, count + 1)]
            outputs.append(Output((count,), bits == 32))
        else:
            options = dict(mode=self.mode, boundary=boundary, cval=self.cval, flip=self.flip)
            steps = chain(layers, **options)
            signs = stacks.can_be_negative(layers, input_negative=bits == 32)
            outputs = [Output((n,), sign, len(shape) == 2) for n, sign in enumerate(signs, 1)]
        if self.final_only:
            outputs = outputs[-1:]
        emit = frozenset(n for output in outputs for n in output.sources)
        return steps, emit, outputs

    def receptive_field_sizes(self, layers):
        """(rows, columns) of each layer's receptive field, from :mod:`dilcli.receptive`."""
        from dilcli.core.receptive import Layer, receptive_fields

        rows = receptive_fields([Layer(int(x.kernel_shape[0]), x.dilation) for x in layers])
        columns = receptive_fields([Layer(int(x.kernel_shape[1]), x.dilation) for x in layers])
        return list(zip(rows, columns, strict=True))

    def _run_image(self, image, output_paths):
        from dilcli.core import stacks

        data = image.data
        channels = 1 if data.ndim == 2 else data.shape[2]
        layers = self.checked_layers(channels)
        # Float data (.npy, float TIFF) may be negative; decoded images are not.
        input_negative = image.bits == 32
        boundary = self.boundary or "reflect"
        if self.stack == "starlet":
            levels = len(layers)
            planes, residual = stacks.starlet(data, levels, boundary=boundary, cval=self.cval)
            scales = [(plane, True) for plane in planes] + [(residual, input_negative)]
            labels = [f"w{j} (d={d})" for j, d in enumerate(self.dilations, 1)] + [f"c{levels}"]
        else:
            options = dict(mode=self.mode, boundary=boundary, cval=self.cval, flip=self.flip)
            signs = stacks.can_be_negative(layers, input_negative=input_negative)
            scales = zip(stacks.iterate_layers(data, layers, **options), signs, strict=True)
            sizes = self.receptive_field_sizes(layers)
            labels = [
                f"l{i} d={layer.dilation} RF {_size(size)}"
                for i, (layer, size) in enumerate(zip(layers, sizes, strict=True), 1)
            ]
        count = len(self.scale_names())
        saved = iter(output_paths)
        panels = [("input", display.quantize(np.clip(_displayable(data), 0, 1), 8))]
        for number, ((response, signed), label) in enumerate(zip(scales, labels, strict=True), 1):
            if data.ndim == 2 and response.ndim == 3 and response.shape[2] == 1:
                response = response[..., 0]  # one channel in, one channel out
            if number == count or not self.final_only:
                as_file = _displayable(response) if self.rendering.writes_pixels else response
                # Not consume=True: ``response`` feeds the next layer.
                self.rendering.save(next(saved), as_file, image, signed)
            if self.montage:
                # Scales differ by orders of magnitude: unless --map says otherwise,
                # each panel is stretched to its own range, so every scale is visible.
                mapping = self.rendering.mapping or "stretch"
                shown = display.display_values(_displayable(response), mapping, self.rendering.gain)
                panels.append((label, display.quantize(shown, 8)))
        if self.montage:
            from dilcli.render.panels import montage

            png.save_pixels(output_paths[-1], montage(panels))


def _size(rows_columns):
    rows, columns = rows_columns
    return f"{rows}x{columns}"


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

    def output_names(self, stem, suffix=".npy"):
        ext = suffix or ".npy"
        if self.stack:
            parts = [f"stack_l{i}_d{d}" for i, d in enumerate(self.dilations, 1)]
        else:
            parts = [f"d{d}" for d in self.dilations]
        names = [f"{stem}_{self.kernel.name}_{part}{ext}" for part in parts]
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
        from dilcli.core.stacks import signal_layers

        layers = signal_layers(
            signal.data,
            self.kernel.parts[0],
            self.dilations,
            mode=self.mode,
            boundary=self.boundary,
            cval=self.cval,
            flip=self.flip,
            stack=self.stack,
            activation=self.activation,
        )
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
