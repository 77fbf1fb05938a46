"""PNG saturation and edge visibility of dilcli's default mapping, before and after.

For every sample image and dilation, for every named 2-D kernel, three random kernels
(``convolve -k`` with custom weights) and every layer of the stacks ``dilcli context``
builds (the seed's laplacian stack at ``-d 1,2,4,8``, ``--init random --seed 42``,
``--preset context-basic``, ``context-large`` and ``starlet``), prints the share of
pixel values at 255 and the 99.5th percentile of the pixels (as a fraction of full
scale) under the old default (``abs`` for responses that can be negative, else
``clip``) and under the new one, as ``dilcli`` writes it: the rule and tone scale of
:mod:`dilcli.render.display` (``kernel_display``, ``stack_displays``,
``starlet_displays``), decided from the kernel or stack alone.

Goals, for the new default, everywhere: at most 2 % of values at 255, and a 99.5th
percentile of at least 15 % of full scale (edges visible). Exits 1 if one fails.
Shares count every channel value of a colour image (as the issue's figures do).

    python benchmarks/saturation.py [--dilations 1,2,4,8,16] [--images astronaut,brick]
                                    [--quiet] [--montages docs/tone]

``--montages DIR`` also writes, for every image, ``DIR/{image}-before-after.png``: the
input beside the laplacian at each dilation, under the old default (top row) and the
new one (bottom row).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dilcli.core import stacks as stack_library
from dilcli.core.conv import apply_kernel
from dilcli.core.kernels import NAMED_KERNELS, kernel_from_array, named_kernel
from dilcli.io.images import load_image
from dilcli.render import display
from dilcli.render.display import Rendering, quantize

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
DILATIONS = (1, 2, 4, 8, 16)
STACK_DILATIONS = (1, 2, 4, 8)
STARLET_LEVELS = 5
MAX_SATURATED = 0.02  # share of values at 255
MIN_P995 = 0.15  # 99.5th percentile of the pixels, fraction of full scale
MONTAGE_HEIGHTS = (256, 224, 200, 180, 160)  # panel rows, tallest first
MAX_MONTAGE_BYTES = 600 * 1024  # README pictures stay under ~600 KB
NEW = Rendering()  # the new default: no --map


def sample_images(names=None):
    """``(stem, path)`` of every sample image (png/jpg), or of those named."""
    paths = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if names:
        paths = [p for p in paths if p.stem in names]
        missing = set(names) - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"no sample image named {', '.join(sorted(missing))}")
    return [(p.stem, p) for p in paths]


def random_kernels():
    """Custom kernels as a user might type them: two signed, one non-negative."""
    rng = np.random.default_rng(14)
    return [
        kernel_from_array(rng.standard_normal((3, 3)), name="random-3x3"),
        kernel_from_array(rng.standard_normal((5, 5)), name="random-5x5"),
        kernel_from_array(rng.random((3, 3)), name="random-positive-3x3"),
    ]


def convolve_kernels():
    """Every named 2-D kernel, then the random ones."""
    return [*NAMED_KERNELS.values(), *random_kernels()]


def stacks(channels):
    """The stacks ``dilcli context`` builds for an input of ``channels``: ``(name, layers)``."""
    laplacian = named_kernel("laplacian").parts[0]
    return [
        ("stack laplacian", stack_library.kernel_stack(laplacian, STACK_DILATIONS)),
        ("stack random-42", stack_library.random_stack(STACK_DILATIONS, size=(3, 3), seed=42)),
        ("context-basic", stack_library.context_basic(channels)),
        ("context-large", stack_library.context_large(channels)),
    ]


def shown_as_png(response):
    """What a PNG shows: the channel mean of maps with other than 1 or 3 channels."""
    if response.ndim == 3 and response.shape[2] not in (1, 3):
        return response.mean(axis=2)
    return response


def cases(data, dilations):
    """``(label, response, can be negative, DefaultDisplay)`` of every kernel and layer."""
    for kernel in convolve_kernels():
        for d in dilations:
            response = apply_kernel(data, kernel, d)
            yield (
                f"{kernel.name} d={d}",
                response,
                kernel.is_signed,
                display.kernel_display(kernel, d),
            )
    channels = 1 if data.ndim == 2 else data.shape[2]
    for name, layers in stacks(channels):
        signs = stack_library.can_be_negative(layers)
        outputs = stack_library.iterate_layers(data, layers)
        looks = display.stack_displays(layers, channels)
        for number, (layer, y, signed, look) in enumerate(zip(layers, outputs, signs, looks), 1):
            yield f"{name} l{number} d={layer.dilation}", shown_as_png(y), signed, look
    planes, residual = stack_library.starlet(data, STARLET_LEVELS)
    looks = display.starlet_displays(STARLET_LEVELS)
    labels = [f"starlet w{j} d={2 ** (j - 1)}" for j in range(1, STARLET_LEVELS + 1)]
    for label, y, signed, look in zip(
        [*labels, f"starlet c{STARLET_LEVELS}"],
        [*planes, residual],
        [True] * STARLET_LEVELS + [False],
        looks,
    ):
        yield label, y, signed, look


def old_pixels(response, signed):
    """The old default: ``abs`` for responses that can be negative, else ``clip``."""
    return quantize(display.display_values(response, "abs" if signed else "clip"), 8)


def new_pixels(response, look):
    """The new default, as ``dilcli`` writes an 8-bit PNG without ``--map``."""
    return NEW.pixels(response, look, 8)


def measure(pixels):
    """Share of values at 255 and the 99.5th percentile as a fraction of 255."""
    return float(np.mean(pixels == 255)), float(np.percentile(pixels, 99.5)) / 255


def passes(saturated, p995):
    return saturated <= MAX_SATURATED and p995 >= MIN_P995


def run(images, dilations, quiet):
    header = ("image", "case", "new map", "old sat %", "old p99.5", "new sat %", "new p99.5", "")
    rows, failures, old_failures = [], [], 0
    worst = dict(old_sat=(0.0, ""), new_sat=(0.0, ""), old_p=(1.0, ""), new_p=(1.0, ""))

    def note(key, value, where, larger):
        if (value > worst[key][0]) if larger else (value < worst[key][0]):
            worst[key] = (value, where)

    for stem, path in images:
        data = load_image(path).data
        for label, response, signed, look in cases(data, dilations):
            old_sat, old_p = measure(old_pixels(response, signed))
            new_sat, new_p = measure(new_pixels(response, look))
            where = f"{stem} {label}"
            ok = passes(new_sat, new_p)
            old_failures += not passes(old_sat, old_p)
            if not ok:
                failures.append(where)
            note("old_sat", old_sat, where, True)
            note("new_sat", new_sat, where, True)
            note("old_p", old_p, where, False)
            note("new_p", new_p, where, False)
            rows.append(
                (
                    stem,
                    label,
                    look.mapping,
                    f"{100 * old_sat:.2f}",
                    f"{old_p:.3f}",
                    f"{100 * new_sat:.2f}",
                    f"{new_p:.3f}",
                    "" if ok else "FAIL",
                )
            )
    if not quiet:
        widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
        print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    print(
        f"\n{len(rows)} cases; goals: at most {100 * MAX_SATURATED:.0f} % at 255, p99.5 >= {MIN_P995}"
    )
    for key, title in (
        ("old_sat", "worst saturated share, old default"),
        ("new_sat", "worst saturated share, new default"),
        ("old_p", "lowest p99.5, old default"),
        ("new_p", "lowest p99.5, new default"),
    ):
        value, where = worst[key]
        shown = f"{100 * value:.3f} %" if key.endswith("sat") else f"{value:.3f}"
        print(f"{title}: {shown} ({where})")
    print(
        f"cases passing the goals: old default {len(rows) - old_failures} of {len(rows)}, "
        f"new default {len(rows) - len(failures)} of {len(rows)}"
    )
    for where in failures:
        print(f"FAIL: {where}", file=sys.stderr)
    return not failures


def montages(images, dilations, folder):
    """For every image, ``{image}-before-after.png``: the input beside the laplacian at
    each dilation, the old default above the new one."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kernel = named_kernel("laplacian")
    for stem, path in images:
        data = load_image(path).data
        shown = quantize(np.clip(data, 0, 1), 8)
        before, after = [("input", shown)], [("input", shown)]
        for d in dilations:
            y = apply_kernel(data, kernel, d)
            before.append((f"before (abs), d={d}", old_pixels(y, True)))
            after.append((f"after (tone), d={d}", new_pixels(y, display.kernel_display(kernel, d))))
        save_montage(folder / f"{stem}-before-after.png", [before, after])


def save_montage(target, rows):
    """Rows of panels, one above the other, as a PNG under MAX_MONTAGE_BYTES: the
    tallest panel height from MONTAGE_HEIGHTS that fits in full colour, or else as a
    256-colour palette (dithered)."""
    import io

    from PIL import Image

    from dilcli.render.panels import montage

    for height in MONTAGE_HEIGHTS:
        picture = Image.fromarray(
            np.concatenate([montage(panels, panel_height=height) for panels in rows], axis=0)
        )
        for colours in ("full colour", "256 colours"):
            if colours == "256 colours":
                picture = picture.quantize(256, method=Image.Quantize.MEDIANCUT)
            buffer = io.BytesIO()
            picture.save(buffer, "PNG", optimize=True)
            if buffer.tell() <= MAX_MONTAGE_BYTES:
                break
        if buffer.tell() <= MAX_MONTAGE_BYTES:
            break
    target.write_bytes(buffer.getvalue())
    print(f"wrote {target} ({buffer.tell() // 1024} KB, panels {height} px high, {colours})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dilations", default=",".join(map(str, DILATIONS)))
    parser.add_argument("--images", default="", help="comma-separated stems; default: all")
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    parser.add_argument("--montages", metavar="DIR", help="also write the README montages")
    args = parser.parse_args(argv)
    dilations = [int(d) for d in args.dilations.split(",")]
    images = sample_images([n for n in args.images.split(",") if n])
    ok = run(images, dilations, args.quiet)
    if args.montages:
        montages(images, dilations, args.montages)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
