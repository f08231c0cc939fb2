"""Image normalisation: every kind of bad or unusual input gets a clear outcome."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from components.catalog_import import images


def _encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _rgb(w=40, h=30):
    array = np.zeros((h, w, 3), np.uint8)
    array[:, : w // 2] = (255, 0, 0)
    array[:, w // 2:] = (0, 0, 255)
    return Image.fromarray(array)


def test_rgb_jpeg_is_kept_byte_for_byte():
    data = _encode(_rgb(), "JPEG")
    result = images.normalize_image(data)
    assert result.encoded == data and not result.reencoded
    assert (result.height, result.width, result.format) == (30, 40, "jpeg")


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "LA", "I;16"])
def test_other_modes_become_rgb(mode):
    source = _rgb().convert("RGBA" if mode in ("RGBA", "LA") else "RGB")
    if mode == "I;16":
        array = (np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)
        source = Image.fromarray(array, "I;16")
    else:
        source = source.convert(mode)
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    result = images.normalize_image(_encode(source, fmt))
    assert result.pixels.shape == (30, 40, 3) and result.pixels.dtype == np.uint8
    decoded = Image.open(io.BytesIO(result.encoded))
    assert decoded.mode == "RGB"
    if mode == "I;16":
        assert result.pixels.max() > 200  # scaled, not clipped to a white image
        assert result.pixels.min() < 10


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    result = images.normalize_image(_encode(rgba, "PNG"))
    assert tuple(result.pixels[0, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied():
    image = _rgb(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = _encode(image, "JPEG", exif=exif.tobytes())
    result = images.normalize_image(data)
    assert (result.height, result.width) == (40, 30) and result.reencoded
    assert result.exif_transpose == 6


@pytest.mark.parametrize("data,reason", [
    (b"", "empty_file"),
    (b"this is not an image at all", "not_an_image"),
    (b"%PDF-1.4 fake", "not_an_image"),
])
def test_non_images_are_rejected(data, reason):
    with pytest.raises(images.RejectedInput) as err:
        images.normalize_image(data)
    assert err.value.reason == reason


def test_truncated_jpeg_is_rejected():
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(images.RejectedInput) as err:
        images.normalize_image(data[: len(data) // 2])
    assert err.value.reason == "corrupt_image"


def _png_header(width, height):
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))


def test_decompression_bomb_is_rejected_before_decoding():
    with pytest.raises(images.RejectedInput) as err:
        images.normalize_image(_png_header(50_000, 50_000))
    assert err.value.reason == "decompression_bomb"
    with pytest.raises(images.RejectedInput) as err:
        images.normalize_image(_png_header(8000, 8000), max_pixels=10_000_000)
    assert err.value.reason == "decompression_bomb"


def test_tiny_image_is_rejected():
    with pytest.raises(images.RejectedInput) as err:
        images.normalize_image(_encode(_rgb(8, 8), "PNG"))
    assert err.value.reason == "image_too_small"
