"""What one input file becomes: the per-file work of each command, as picklable jobs.

A job names its outputs, states the parameters that change them, and runs on one
input (see :mod:`dilcli.batch`). Jobs hold no open files or terminals, so worker
processes and cluster workers can run them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dilcli import imageio
from dilcli.kernels import Kernel


@dataclass(frozen=True)
class Rendering:
    """How responses become files: format, pixel mapping, bit depth, compression."""

    fmt: str = "png"
    mapping: str | None = None  # None: 'abs' for signed kernels, else 'clip'
    gain: float = 1.0
    bits: int | None = None  # None: 16 for 16-bit input, else 8
    compression: int = 1

    def extension(self):
        return {"png": "png", "tiff": "tif", "npy": "npy"}[self.fmt]

    def save(self, path, response, image, signed):
        """Write ``response`` (float) to ``path``; return 8-bit display pixels or None."""
        if self.fmt != "png":
            imageio.save_float(path, response, self.fmt)
            return None
        mapping = self.mapping or ("abs" if signed else "clip")
        values = imageio.display_values(response, mapping, self.gain)
        bits = self.bits or (16 if image.bits == 16 else 8)
        alpha = image.alpha if image.alpha is not None and image.alpha.shape == values.shape[:2] else None
        imageio.save_pixels(path, imageio.with_alpha(imageio.quantize(values, bits), alpha), compression=self.compression)
        return imageio.quantize(values, 8)


@dataclass(frozen=True)
class ConvolveJob:
    """One dilated kernel at each dilation: ``{stem}_{kernel}_d{d}.{ext}`` per input."""

    kernel: Kernel
    dilations: tuple
    mode: str = "same"
    boundary: str | None = None
    cval: float = 0.0
    flip: bool = False
    rendering: Rendering = Rendering()
    montage: bool = False
    max_pixels: int = imageio.DEFAULT_MAX_PIXELS

    def output_names(self, stem):
        ext = self.rendering.extension()
        names = [f"{stem}_{self.kernel.name}_d{d}.{ext}" for d in self.dilations]
        if self.montage:
            names.append(f"{stem}_{self.kernel.name}_montage.png")
        return names

    def signature(self):
        return {
            "command": "convolve",
            "kernel": [np.asarray(p).tolist() for p in self.kernel.parts],
            "dilations": list(self.dilations),
            "mode": self.mode,
            "boundary": self.boundary,
            "cval": self.cval,
            "flip": self.flip,
            "rendering": vars(self.rendering),
            "montage": self.montage,
        }

    def run(self, input_path, output_paths):
        from dilcli.conv import apply_kernel

        image = imageio.load_image(input_path, max_pixels=self.max_pixels)
        panels = [("input", imageio.quantize(np.clip(_displayable(image.data), 0, 1), 8))]
        options = dict(mode=self.mode, boundary=self.boundary, cval=self.cval, flip=self.flip)
        for dilation, path in zip(self.dilations, output_paths):
            response = apply_kernel(image.data, self.kernel, dilation, **options)
            shown = self.rendering.save(path, response, image, self.kernel.is_signed)
            if self.montage:
                if shown is None:
                    mapping = "abs" if self.kernel.is_signed else "clip"
                    shown = imageio.quantize(imageio.display_values(response, mapping), 8)
                panels.append((f"{self.kernel.name}, d={dilation}", shown))
        if self.montage:
            from dilcli.render import montage

            imageio.save_pixels(output_paths[-1], montage(panels))


def _displayable(data):
    """Feature maps with other than 1 or 3 channels are shown by their mean."""
    if data.ndim == 3 and data.shape[2] not in (1, 3):
        return data.mean(axis=2)
    return data
