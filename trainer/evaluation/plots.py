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


# --- report figures drawn with matplotlib (axes, values, legends, captions) -----------------

def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt
    return plt


def _png(figure) -> bytes:
    import io
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def bar_figure(values: dict, title: str = "", xlabel: str = "score") -> bytes:
    """Horizontal bars of ``{name: value}``, highest first, each with its value (PNG)."""
    plt = _pyplot()
    items = sorted(values.items(), key=lambda item: item[1])
    figure, axis = plt.subplots(figsize=(7, 0.8 + 0.28 * max(1, len(items))))
    names, heights = [name for name, _ in items], [value for _, value in items]
    bars = axis.barh(names, heights, color="#3c6eb4")
    axis.bar_label(bars, labels=[f"{v:.3f}" for v in heights], padding=3, fontsize=8)
    top = max([1.0] + heights)
    axis.set_xlim(0, top * 1.12)
    axis.set_xlabel(xlabel)
    if title:
        axis.set_title(title)
    axis.tick_params(axis="y", labelsize=8)
    return _png(figure)


def confusion_figure(matrix: np.ndarray, names: Sequence[str], title: str = "") -> bytes:
    """A confusion matrix: rows true, columns predicted, coloured by the share of each true
    class (colour scale beside it), each cell with its count (PNG)."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    side = 2.5 + 0.42 * len(names)
    figure, axis = plt.subplots(figsize=(side + 1.2, side))
    image = axis.imshow(shares, cmap="viridis", vmin=0.0, vmax=1.0)
    colour_bar = figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    colour_bar.set_label("share of the true class")
    axis.set_xticks(range(len(names)), labels=names, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), labels=names, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if len(names) <= 40:
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                axis.text(column, row, f"{int(count)}", ha="center", va="center", fontsize=7,
                          color="black" if shares[row, column] > 0.6 else "white")
    axis.set_title(title or f"confusion matrix ({int(matrix.sum())} examples)")
    return _png(figure)


def curves_figure(metrics: dict, resumed_at_epoch=None) -> bytes:
    """Training curves from ``history.json``'s metrics: losses on the left, every other
    metric on the right, training solid and validation dashed, per epoch (PNG)."""
    plt = _pyplot()
    figure, (losses, others) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, values in sorted(metrics.items()):
        if not values or name in ("learning_rate", "lr") or name.startswith("val_"):
            continue
        axis = losses if "loss" in name else others
        epochs = range(1, len(values) + 1)
        line, = axis.plot(epochs, values, marker=".", label=name)
        validation = metrics.get(f"val_{name}")
        if validation:
            axis.plot(range(1, len(validation) + 1), validation, marker=".", linestyle="--",
                      color=line.get_color(), label=f"val_{name}")
    for axis, title in ((losses, "loss"), (others, "metrics")):
        axis.set_xlabel("epoch")
        axis.set_title(title)
        if axis.lines:
            axis.legend(fontsize=7)
        if resumed_at_epoch:
            axis.axvline(resumed_at_epoch + 0.5, color="grey", linestyle=":")
    return _png(figure)


def gallery_figure(images: Sequence, captions: Sequence[str], correct: Sequence[bool],
                   columns: int = 4, title: str = "") -> bytes:
    """Images in a grid, each captioned (green when ``correct``, red otherwise) (PNG)."""
    plt = _pyplot()
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows),
                                squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, caption, right in zip(axes.flat, images, captions, correct):
        axis.imshow(np.asarray(image))
        axis.set_title(caption, fontsize=8, color="#1a7f37" if right else "#c62828")
    if title:
        figure.suptitle(title)
    return _png(figure)
