"""Pictures for people: labelled montages of images side by side."""

from __future__ import annotations

import numpy as np

PANEL_HEIGHT = 384
LABEL_HEIGHT = 28
GAP = 6
BACKGROUND = 255


def montage(panels, *, panel_height=PANEL_HEIGHT):
    """One RGB uint8 picture of ``(label, pixels)`` panels in a row, labels above.

    ``pixels`` are uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` (alpha dropped).
    Panels are scaled to ``panel_height`` rows (never up).
    """
    from PIL import Image, ImageDraw, ImageFont

    images = []
    for _, pixels in panels:
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)
        if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
            pixels = pixels[..., :-1]
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        image = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
        height = min(panel_height, image.height)
        width = max(1, round(image.width * height / image.height))
        if (width, height) != image.size:
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        images.append(image)
    total_width = sum(i.width for i in images) + GAP * (len(images) + 1)
    total_height = max(i.height for i in images) + LABEL_HEIGHT + GAP
    canvas = Image.new("RGB", (total_width, total_height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=LABEL_HEIGHT - 10)
    x = GAP
    for (label, _), image in zip(panels, images):
        canvas.paste(image, (x, LABEL_HEIGHT))
        draw.text(
            (x + image.width / 2, LABEL_HEIGHT / 2), label, fill=(0, 0, 0), font=font, anchor="mm"
        )
        x += image.width + GAP
    return np.asarray(canvas)
