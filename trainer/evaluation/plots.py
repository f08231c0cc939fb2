"""Report images: colour ramps, boxes drawn on images, contact sheets."""

from __future__ import annotations

from typing import Sequence

import numpy as np

# A perceptual dark-to-bright ramp (black → purple → orange → yellow), interpolated.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]],
                 np.float64)


def colorize(values: np.ndarray) -> np.ndarray:
    """[h, w] values in 0..1 → [h, w, 3] uint8 colours of the ramp."""
    position = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(_RAMP) - 1)
    fraction = (position - low)[..., None]
    return (_RAMP[low] * (1 - fraction) + _RAMP[high] * fraction).round().astype(np.uint8)


# The pipeline study's box colours: upper body red, lower blue, full green, footwear orange.
SUPER_CATEGORY_COLOURS = {"upper_body": (220, 40, 40), "lower_body": (40, 90, 230),
                          "full_body": (30, 170, 60), "footwear": (250, 150, 20)}


def draw_boxes(encoded: bytes, boxes, names, scores=(), truth_boxes=(), width: int = 256,
               details=()):
    """The encoded image, ``width`` pixels wide, with ``truth_boxes`` (white, black-edged) and
    ``boxes`` (normalised ``[ymin, xmin, ymax, xmax]``) in their class colour, captioned with
    ``names``, ``scores`` and a second line of ``details`` (e.g. the garment's category); a PIL
    image."""
    import io

    from PIL import Image, ImageDraw
    image = Image.open(io.BytesIO(encoded)).convert("RGB")
    image = image.resize((width, max(1, round(image.height * width / image.width))))
    canvas = ImageDraw.Draw(image)

    def corners(box):
        ymin, xmin, ymax, xmax = box
        return [xmin * image.width, ymin * image.height, xmax * image.width,
                ymax * image.height]
    for box in truth_boxes:  # white edged with black: visible on light and dark images
        canvas.rectangle(corners(box), outline=(0, 0, 0), width=3)
        canvas.rectangle(corners(box), outline=(255, 255, 255), width=1)
    for index, (box, name) in enumerate(zip(boxes, names)):
        colour = SUPER_CATEGORY_COLOURS.get(name, (255, 0, 255))
        xy = corners(box)
        canvas.rectangle(xy, outline=colour, width=2)
        caption = f"{name} {scores[index]:.2f}" if len(scores) > index else name
        if len(details) > index and details[index]:
            caption += "\n" + details[index]
        canvas.text((xy[0] + 2, xy[1] + 1), caption, fill=colour)
    return image


def contact_sheet(images: Sequence[bytes], captions: Sequence[str], title: str = "",
                  thumbnail: int = 128, columns: int = 5):
    """A PIL image of the encoded ``images`` as ``thumbnail``-pixel squares (aspect kept), in
    rows of ``columns``, each captioned, under an optional ``title`` line."""
    import io

    from PIL import Image, ImageDraw
    columns = max(1, min(columns, len(images) or 1))
    rows = max(1, -(-len(images) // columns))
    header, footer = (16 if title else 0), 14
    sheet = Image.new("RGB", (columns * thumbnail, header + rows * (thumbnail + footer)),
                      (255, 255, 255))
    canvas = ImageDraw.Draw(sheet)
    if title:
        canvas.text((4, 2), title, fill=(0, 0, 0))
    for index, (encoded, caption) in enumerate(zip(images, captions)):
        image = Image.open(io.BytesIO(encoded)).convert("RGB")
        image.thumbnail((thumbnail, thumbnail))
        x = (index % columns) * thumbnail
        y = header + (index // columns) * (thumbnail + footer)
        sheet.paste(image, (x + (thumbnail - image.width) // 2, y))
        canvas.text((x + 2, y + thumbnail + 1), caption[:thumbnail // 6], fill=(0, 0, 0))
    return sheet
