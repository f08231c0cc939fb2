"""Safe image normalisation for catalog ingestion.

Every image that enters a TFRecord passes through :func:`normalize_image`: it is checked
against size limits before its pixels are decoded (decompression bombs), fully decoded
(truncation), rotated by its EXIF orientation and converted to 8-bit RGB. Anything that
cannot be made into a sound RGB image raises :class:`RejectedInput` with a reason that ends
up in the rejects report.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from schemas.features import MAX_GIF_FRAMES, MAX_IMAGE_PIXELS
from schemas.image_headers import gif_decode_cost

MAX_PIXELS = MAX_IMAGE_PIXELS  # ~40 MP: larger "photos" are treated as decompression bombs.
MIN_SIDE = 16
MAX_FILE_BYTES = 64 * 1024 * 1024
JPEG_QUALITY = 95


# Signatures of image formats: a file that starts like an image but does not open is corrupt.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
                b"RIFF")


class RejectedInput(Exception):
    """An input that cannot be converted; ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class NormalizedImage:
    """An RGB image ready for a record: encoded bytes plus the facts the record needs."""

    encoded: bytes
    format: str  # "jpeg" or "png"
    height: int
    width: int
    pixels: np.ndarray  # HxWx3 uint8, after EXIF rotation
    reencoded: bool
    exif_transpose: int  # the EXIF orientation that was applied (1 = none)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grayscale: scale the used range to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        top = array.max() if array.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        array8 = np.clip(array * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(array8, "L").convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 1.0)
        span = (hi - lo) or 1.0
        return Image.fromarray(((array - lo) / span * 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # CMYK, YCbCr, L, 1, P, LAB, HSV: PIL knows the conversion.
    return image.convert("RGB")


def normalize_image(data: bytes, *, max_pixels: int = MAX_PIXELS,
                    min_side: int = MIN_SIDE) -> NormalizedImage:
    """Validates and normalises encoded image bytes to an 8-bit RGB JPEG or PNG.

    Original JPEG bytes are kept untouched when they already are baseline RGB without an
    EXIF rotation; everything else is re-encoded (PNG sources stay PNG, others become JPEG).

    Raises:
      RejectedInput: empty, not an image, truncated, too large, too small or undecodable.
    """
    if not data:
        raise RejectedInput("empty_file")
    if len(data) > MAX_FILE_BYTES:
        raise RejectedInput("file_too_large", f"{len(data)} bytes")
    if data.startswith(b"GIF8") and len(data) >= 13:
        # Every frame declares its own size: check them all before anything is decoded.
        pixels, frames = gif_decode_cost(data)
        if frames > MAX_GIF_FRAMES:
            raise RejectedInput("decompression_bomb", f"{frames} GIF frames exceed "
                                f"{MAX_GIF_FRAMES}")
        if pixels > max_pixels:
            raise RejectedInput("decompression_bomb", f"GIF frames declare {pixels} pixels, "
                                f"more than {max_pixels}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
    except Image.DecompressionBombError as err:
        raise RejectedInput("decompression_bomb", str(err)) from None
    except Image.DecompressionBombWarning as err:
        raise RejectedInput("decompression_bomb", str(err)) from None
    except Exception as err:  # PIL raises many types for non-images.
        reason = "corrupt_image" if data.startswith(_IMAGE_MAGIC) else "not_an_image"
        raise RejectedInput(reason, f"{type(err).__name__}: {err}") from None
    # Checked from the header, before any pixel is decoded.
    if width * height > max_pixels:
        raise RejectedInput("decompression_bomb", f"{width}x{height} exceeds {max_pixels} pixels")
    if min(width, height) < min_side:
        raise RejectedInput("image_too_small", f"{width}x{height}")
    source_format = (image.format or "").upper()
    try:
        image.load()  # Full decode: truncated files fail here.
    except Exception as err:
        raise RejectedInput("corrupt_image", f"{type(err).__name__}: {err}") from None
    try:
        orientation = int(image.getexif().get(0x0112, 1) or 1)
    except Exception:
        orientation = 1
    try:
        transposed = ImageOps.exif_transpose(image) if orientation != 1 else image
        rgb = _to_rgb(transposed)
    except Exception as err:
        raise RejectedInput("unsupported_image", f"{image.mode}: {err}") from None

    keep_original = (source_format == "JPEG" and image.mode == "RGB" and orientation == 1)
    if keep_original:
        encoded, fmt = data, "jpeg"
    else:
        buffer = io.BytesIO()
        if source_format == "PNG":
            rgb.save(buffer, format="PNG")
            fmt = "png"
        else:
            rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
            fmt = "jpeg"
        encoded = buffer.getvalue()
    pixels = np.asarray(rgb, dtype=np.uint8)
    return NormalizedImage(encoded=encoded, format=fmt, height=pixels.shape[0],
                           width=pixels.shape[1], pixels=pixels, reencoded=not keep_original,
                           exif_transpose=orientation)


# EXIF orientation → the PIL transpose that displays the image upright (ImageOps.exif_transpose).
_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                   6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                   8: Image.Transpose.ROTATE_90}


def _orient_point(x: float, y: float, orientation: int) -> tuple[float, float]:
    """A normalised point of the stored image → the same point in the upright image."""
    return {1: (x, y), 2: (1 - x, y), 3: (1 - x, 1 - y), 4: (x, 1 - y), 5: (y, x),
            6: (1 - y, x), 7: (1 - y, 1 - x), 8: (y, 1 - x)}[orientation]


def orient_box(box: tuple, orientation: int) -> tuple[float, float, float, float]:
    """A normalised ``(xmin, ymin, xmax, ymax)`` box of the stored image → the box of the same
    object after the EXIF ``orientation`` is applied (as :func:`normalize_image` applies it)."""
    xmin, ymin, xmax, ymax = box
    (x1, y1), (x2, y2) = (_orient_point(xmin, ymin, orientation),
                          _orient_point(xmax, ymax, orientation))
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def orient_label_map(encoded: bytes, orientation: int) -> bytes:
    """A PNG label map turned the way the EXIF ``orientation`` turns its image."""
    if orientation == 1:
        return encoded
    with Image.open(io.BytesIO(encoded)) as mask:
        turned = mask.transpose(_EXIF_TRANSPOSE[orientation])
        buffer = io.BytesIO()
        turned.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_png(array: np.ndarray) -> bytes:
    """PNG-encodes an HxW uint8 label map or HxWx3 image."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(array: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG-encodes an HxWx3 uint8 image."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array), "RGB").save(buffer, format="JPEG",
                                                             quality=quality)
    return buffer.getvalue()
