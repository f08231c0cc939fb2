"""What decoding an encoded image would cost, read from its header without decoding it.

The Python twin of the serving graph's ``trainer.preprocessing.declared_decode_cost``: the
catalog converters use it to refuse decompression bombs, the model server to bound the pixels one
request may make a model decode (``--max_request_pixels``). Pure Python, no TensorFlow.
"""

from __future__ import annotations

from typing import Optional

from schemas.features import MAX_GIF_FRAMES

# JPEG start-of-frame markers (SOF0..SOF15 less DHT, JPG and DAC), which carry the frame size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0..7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
# A header found further in than this is not looked for (EXIF thumbnails come before the SOF,
# each segment at most 64 KiB; real files place it within the first few hundred KiB).
_JPEG_MAX_SEGMENTS = 4096


def gif_decode_cost(data: bytes) -> tuple[int, int]:
    """``(pixels, frames)`` that decoding every frame of a GIF costs, read from its block
    structure without decoding: the largest of the logical screen, the sum of the frames'
    own sizes (a frame may declare more than the screen) and frames × screen.

    The same walk as the serving graph's (``trainer.preprocessing._gif_decode_cost``): block
    headers are read, data sub-blocks skipped, one step each; a structure needing more than
    one step per 64 bytes plus 8 per frame (real encoders write 255-byte sub-blocks) is
    reported as ``(2**62, frames)``, and the walk stops past MAX_GIF_FRAMES frames.
    """
    if len(data) < 13 or not data.startswith(b"GIF8"):
        raise ValueError("not a GIF")

    def table_size(packed: int) -> int:
        return 3 * (2 << (packed & 7)) if packed & 0x80 else 0

    screen = int.from_bytes(data[6:8], "little") * int.from_bytes(data[8:10], "little")
    position = 13 + table_size(data[10])
    frames = frame_pixels = steps = 0
    padded = data + b"\0" * 16

    def refused() -> bool:
        return steps > len(data) // 64 + 8 * frames + 256

    while position < len(data) and frames <= MAX_GIF_FRAMES:
        steps += 1
        if refused():
            return 2 ** 62, frames
        kind = padded[position]
        if kind == 0x21:  # extension: label, then sub-blocks
            position += 2
        elif kind == 0x2C:  # image descriptor: x, y, width, height, packed
            width = int.from_bytes(padded[position + 5:position + 7], "little")
            height = int.from_bytes(padded[position + 7:position + 9], "little")
            frames += 1
            frame_pixels += width * height
            position += 10 + table_size(padded[position + 9]) + 1  # + LZW minimum code size
        else:  # trailer (0x3B) or garbage: the decoder has the last word
            break
        while position < len(data):  # data sub-blocks until the zero-length terminator
            steps += 1
            if refused():
                return 2 ** 62, frames
            size = padded[position]
            position += size + 1
            if size == 0:
                break
    return max(screen, frame_pixels, frames * screen), frames


def _jpeg_pixels(data: bytes) -> int:
    """Width × height of a JPEG's first start-of-frame segment; 0 when none is found (the
    decoder then rejects the file)."""
    position = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        while position < len(data) and data[position] == 0xFF:  # fill bytes before a marker
            position += 1
        if position + 1 > len(data):
            return 0
        marker = data[position]
        position += 1
        if marker in _JPEG_STANDALONE:
            continue
        if position + 2 > len(data):
            return 0
        length = int.from_bytes(data[position:position + 2], "big")
        if marker in _JPEG_SOF:
            if position + 7 > len(data):
                return 0
            height = int.from_bytes(data[position + 3:position + 5], "big")
            width = int.from_bytes(data[position + 5:position + 7], "big")
            return width * height
        if length < 2:
            return 0
        position += length
    return 0


def declared_decode_cost(data: bytes) -> Optional[tuple[int, int]]:
    """``(pixels, frames)`` that TensorFlow's ``decode_image`` would decode for these bytes
    (PNG, GIF with every frame, BMP, JPEG), or None when they are not one of those formats."""
    if data.startswith(b"\x89PNG"):
        if len(data) < 24:
            return 0, 1
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big"), 1
    if data.startswith(b"GIF8"):
        return gif_decode_cost(data) if len(data) >= 13 else (0, 1)
    if data.startswith(b"BM"):
        if len(data) < 26:
            return 0, 1
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return abs(width) * abs(height), 1
    if data.startswith(b"\xff\xd8"):
        return _jpeg_pixels(data), 1
    return None
