"""PNG saturation and edge visibility: the current ``abs`` default against the tone map.

For every sample image and dilation, for every named kernel with negative weights (the
signed ones and the gradient magnitudes) and for the seed's context stacks (laplacian
at ``-d 1,2,4,8``, ``--init random --seed 42``, ``--preset context-basic``), prints the
share of pixel values at 255 and the 99.5th percentile of the pixels (as a fraction of
full scale) under the current default (``abs`` for signed responses, else ``clip``)
and under :func:`dilcli.tone.tone_map` with the kernel's or the stack's scale.

Goals, for the tone map, everywhere: at most 2 % of values at 255, and a 99.5th
percentile of at least 15 % of full scale (edges visible). Exits 1 if one fails.
Shares count every channel value of a colour image (as the issue's figures do).

    python benchmarks/saturation.py [--dilations 1,2,4,8,16] [--images astronaut,brick]
                                    [--quiet] [--montages docs/tone]

``--montages DIR`` also writes, with the tone map, ``DIR/{image}-laplacian.png`` (the
input beside d = 1..16) for every image, and ``DIR/astronaut-laplacian-abs.png``, the
same under the current ``abs`` (the "before" of a before/after pair).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dilcli.core import stacks as stack_library
from dilcli.core.conv import apply_kernel
from dilcli.core.kernels import NAMED_KERNELS, named_kernel
from dilcli.io.images import load_image
from dilcli.render import tone
from dilcli.render.display import display_values, quantize

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
DILATIONS = (1, 2, 4, 8, 16)
STACK_DILATIONS = (1, 2, 4, 8)
MAX_SATURATED = 0.02  # share of values at 255
MIN_P995 = 0.15  # 99.5th percentile of the pixels, fraction of full scale
MONTAGE_HEIGHTS = (256, 224, 200, 180, 160, 140, 120)  # panel rows, tallest first
MAX_MONTAGE_BYTES = 580 * 1024  # README pictures stay under ~600 KB


def sample_images(names=None):
    """``(stem, path)`` of every sample image (png/jpg), or of those named."""
    paths = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if names:
        paths = [p for p in paths if p.stem in names]
        missing = set(names) - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"no sample image named {', '.join(sorted(missing))}")
    return [(p.stem, p) for p in paths]


def edge_kernels():
    """Named 2-D kernels with negative weights: signed kernels and gradient magnitudes."""
    return [k for k in NAMED_KERNELS.values() if any((part < 0).any() for part in k.parts)]


def stacks(channels):
    """The seed's stacks as ``dilcli context`` builds them: ``(name, layers)``."""
    laplacian = named_kernel("laplacian").parts[0]
    return [
        ("stack laplacian", stack_library.kernel_stack(laplacian, STACK_DILATIONS)),
        ("stack random-42", stack_library.random_stack(STACK_DILATIONS, size=(3, 3), seed=42)),
        ("context-basic", stack_library.context_basic(channels)),
    ]


def cases(data, dilations):
    """``(label, response, signed, scale)`` of every kernel and stack layer on ``data``."""
    for kernel in edge_kernels():
        for d in dilations:
            yield (
                f"{kernel.name} d={d}",
                apply_kernel(data, kernel, d),
                kernel.is_signed,
                tone.kernel_scale(kernel, d),
            )
    channels = 1 if data.ndim == 2 else data.shape[2]
    for name, layers in stacks(channels):
        scales = tone.stack_scales(layers, channels)
        signs = stack_library.can_be_negative(layers)
        outputs = stack_library.iterate_layers(data, layers)
        for number, (layer, y, signed, scale) in enumerate(zip(layers, outputs, signs, scales), 1):
            yield f"{name} l{number} d={layer.dilation}", y, signed, scale


def old_pixels(response, signed):
    """The current default: ``abs`` for responses that can be negative, else ``clip``."""
    return quantize(display_values(response, "abs" if signed else "clip"), 8)


def new_pixels(response, scale):
    return quantize(tone.tone_map(response, scale), 8)


def measure(pixels):
    """Share of values at 255 and the 99.5th percentile as a fraction of 255."""
    return float(np.mean(pixels == 255)), float(np.percentile(pixels, 99.5)) / 255


def run(images, dilations, quiet):
    header = ("image", "case", "old sat %", "old p99.5", "new sat %", "new p99.5", "")
    rows, failures = [], []
    worst = dict(old_sat=(0.0, ""), new_sat=(0.0, ""), old_p=(1.0, ""), new_p=(1.0, ""))

    def note(key, value, where, larger):
        if (value > worst[key][0]) if larger else (value < worst[key][0]):
            worst[key] = (value, where)

    for stem, path in images:
        data = load_image(path).data
        for label, response, signed, scale in cases(data, dilations):
            old_sat, old_p = measure(old_pixels(response, signed))
            new_sat, new_p = measure(new_pixels(response, scale))
            where = f"{stem} {label}"
            ok = new_sat <= MAX_SATURATED and new_p >= MIN_P995
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
        ("old_sat", "worst saturated share, current default"),
        ("new_sat", "worst saturated share, tone map"),
        ("old_p", "lowest p99.5, current default"),
        ("new_p", "lowest p99.5, tone map"),
    ):
        value, where = worst[key]
        shown = f"{100 * value:.3f} %" if key.endswith("sat") else f"{value:.3f}"
        print(f"{title}: {shown} ({where})")
    old_failures = sum(
        1 for row in rows if float(row[2]) > 100 * MAX_SATURATED or float(row[3]) < MIN_P995
    )
    print(f"cases failing the goals: current default {old_failures}, tone map {len(failures)}")
    for where in failures:
        print(f"FAIL: {where}", file=sys.stderr)
    return not failures


def montages(images, dilations, folder):
    """With the tone map: every image beside its laplacian at each dilation,
    ``{image}-laplacian.png``; and ``astronaut-laplacian-abs.png``, the same under the
    current ``abs``, for a before/after pair."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kernel = named_kernel("laplacian")
    for stem, path in images:
        data = load_image(path).data
        shown = quantize(np.clip(data, 0, 1), 8)
        tone_panels, abs_panels = [("input", shown)], [("input", shown)]
        for d in dilations:
            y = apply_kernel(data, kernel, d)
            tone_panels.append((f"tone, d={d}", new_pixels(y, tone.kernel_scale(kernel, d))))
            abs_panels.append((f"abs, d={d}", old_pixels(y, True)))
        save_montage(folder / f"{stem}-laplacian.png", tone_panels)
        if stem == "astronaut":
            save_montage(folder / "astronaut-laplacian-abs.png", abs_panels)


def save_montage(target, panels):
    """The panels side by side as a PNG under MAX_MONTAGE_BYTES: the tallest panel
    height that fits, from MONTAGE_HEIGHTS."""
    import io

    from PIL import Image

    from dilcli.render.panels import montage

    for height in MONTAGE_HEIGHTS:
        buffer = io.BytesIO()
        Image.fromarray(montage(panels, panel_height=height)).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= MAX_MONTAGE_BYTES:
            break
    target.write_bytes(buffer.getvalue())
    print(f"wrote {target} ({buffer.tell() // 1024} KB, panels {height} px high)")


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
