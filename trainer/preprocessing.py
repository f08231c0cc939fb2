"""TF Transform ``preprocessing_fn``: the deterministic image and label work, done once.

Images are decoded (JPEG/PNG/GIF/BMP, any channel count, to RGB), letterboxed to a square of
``custom_config['stored_size']`` (aspect ratio kept, zero padding) and re-encoded as PNG, so
transformed examples stay compact (a uint8 PNG, not float32 pixels) and lossless. Labels are each
family's business: ``custom_config['fragments']`` lists the dotted paths of the families' Transform
fragments (``fragment(inputs, custom_config) -> {feature: tensor}``), whose outputs are merged
with the image. The same graph runs inside every exported model's serving signatures, which is
what keeps training and serving preprocessing identical.

The helpers below (vocabulary ids, multi-hot, label weights) are what label fragments share.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_transform as tft

from schemas import features as F
from trainer.families.spec import resolve

def _bytes_at(header: tf.Tensor, start: int, count: int, little_endian: bool) -> tf.Tensor:
    """Unsigned integer stored in ``header[start:start+count]`` (header: uint8 vector)."""
    digits = tf.cast(header[start:start + count], tf.int64)
    weights = tf.constant([256 ** i for i in range(count)], tf.int64)
    return tf.reduce_sum(digits * (weights if little_endian else tf.reverse(weights, [0])))


def _gif_decode_cost(encoded: tf.Tensor) -> tuple:
    """``(pixels, frames)`` that decoding a GIF costs, read from its block structure.

    TensorFlow's GIF decoder decodes every frame, and each frame may declare its own size,
    larger than the logical screen: the cost is the largest of the screen, the sum of the frame
    sizes and frames × screen. The walk reads block headers and skips data sub-blocks without
    decoding them, one loop step per block or sub-block. Real encoders write 255-byte data
    sub-blocks, so a walk needing more than one step per 64 bytes (plus a few per frame) is
    refused as malformed (cost above any limit), as is one past MAX_GIF_FRAMES frames: the
    walk's time stays proportional to what decoding the file would take.
    """
    data = tf.io.decode_raw(encoded, tf.uint8)
    length = tf.size(data, out_type=tf.int64)
    data = tf.cast(tf.concat([data, tf.zeros([16], tf.uint8)], 0), tf.int64)

    def at(position):
        return tf.gather(data, tf.minimum(tf.cast(position, tf.int64), length + 15))

    def le16(position):
        return at(position) + 256 * at(position + 1)

    def table_size(packed):
        return tf.where(packed >= 128, 3 * tf.bitwise.left_shift(
            tf.constant(2, tf.int64), tf.bitwise.bitwise_and(packed, 7)), 0)

    screen = le16(6) * le16(8)
    at_block, in_sub_blocks, done = (tf.constant(v, tf.int64) for v in (0, 1, 2))

    def allowed_steps(frames):
        return length // 64 + 8 * frames + 256

    def cond(position, state, frames, frame_pixels, steps):
        return ((state != done) & (position < length) & (steps <= allowed_steps(frames))
                & (frames <= F.MAX_GIF_FRAMES))

    def sub_block(position, frames, frame_pixels):
        size = at(position)
        return (position + size + 1, tf.where(size == 0, at_block, in_sub_blocks), frames,
                frame_pixels)

    def block(position, frames, frame_pixels):
        kind = at(position)

        def image():  # descriptor: x, y, width, height, packed; then LZW minimum code size
            return (position + 11 + table_size(at(position + 9)), in_sub_blocks, frames + 1,
                    frame_pixels + le16(position + 5) * le16(position + 7))

        return tf.case([(tf.equal(kind, 0x21),
                         lambda: (position + 2, in_sub_blocks, frames, frame_pixels)),
                        (tf.equal(kind, 0x2C), image)],
                       default=lambda: (position, done, frames, frame_pixels))

    def body(position, state, frames, frame_pixels, steps):
        step = tf.cond(tf.equal(state, in_sub_blocks),
                       lambda: sub_block(position, frames, frame_pixels),
                       lambda: block(position, frames, frame_pixels))
        return (*step, steps + 1)

    zero = tf.constant(0, tf.int64)
    _, _, frames, frame_pixels, steps = tf.while_loop(
        cond, body, (13 + table_size(at(10)), zero, zero, zero, zero))
    refused = steps > allowed_steps(frames)
    pixels = tf.maximum(screen, tf.maximum(frame_pixels, frames * screen))
    return tf.where(refused, tf.constant(2 ** 62, tf.int64), pixels), frames


def declared_decode_cost(encoded: tf.Tensor) -> tuple:
    """``(pixels, frames)`` an encoded image declares, read without decoding it.

    PNG (IHDR), BMP (DIB header) and JPEG (SOF marker) declare one frame of width × height; a GIF
    declares a logical screen and frames of their own sizes (see ``_gif_decode_cost``). Other
    byte strings give ``(0, 1)`` and are left to the decoder, which rejects them.
    """
    header = tf.io.decode_raw(tf.strings.substr(tf.strings.join([encoded, b"\0" * 32]), 0, 32),
                              tf.uint8)

    def starts_with(magic: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(encoded, 0, len(magic)), magic)

    def single(pixels):
        return lambda: (pixels(), tf.constant(1, tf.int64))

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded, output_type=tf.int32)
        return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)

    return tf.case([
        (starts_with(b"\x89PNG"), single(lambda: _bytes_at(header, 16, 4, False)
                                          * _bytes_at(header, 20, 4, False))),
        (starts_with(b"GIF8"), lambda: _gif_decode_cost(encoded)),
        (starts_with(b"BM"), single(lambda: _bytes_at(header, 18, 4, True) * tf.abs(
            _bytes_at(header, 22, 4, True) - tf.cast(
                _bytes_at(header, 22, 4, True) >= 2 ** 31, tf.int64) * 2 ** 32))),
        (starts_with(b"\xff\xd8"), single(jpeg)),
    ], default=lambda: (tf.constant(0, tf.int64), tf.constant(1, tf.int64)), exclusive=True)


def checked_decode(encoded: tf.Tensor) -> tf.Tensor:
    """Decodes one encoded image (JPEG/PNG/GIF/BMP; a GIF's first frame) to uint8 RGB.

    An image whose header declares more than ``MAX_IMAGE_PIXELS`` pixels to decode (all frames
    of a GIF together), or a GIF of more than ``MAX_GIF_FRAMES`` frames, fails with an
    InvalidArgumentError before anything is allocated for its pixels (decompression bombs).
    """
    pixels, frames = declared_decode_cost(encoded)
    checks = [
        tf.debugging.assert_less_equal(
            pixels, tf.constant(F.MAX_IMAGE_PIXELS, tf.int64),
            message=f"image too large: it declares more than {F.MAX_IMAGE_PIXELS} pixels to "
                    "decode (decompression bomb?); pixels declared:"),
        tf.debugging.assert_less_equal(
            frames, tf.constant(F.MAX_GIF_FRAMES, tf.int64),
            message=f"image has more than {F.MAX_GIF_FRAMES} frames (decompression bomb?); "
                    "frames:")]
    with tf.control_dependencies(checks):
        encoded = tf.identity(encoded)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def decode_and_resize(encoded: tf.Tensor, stored_size: int) -> tf.Tensor:
    """Decodes one encoded image (:func:`checked_decode`) to a ``stored_size``² letterboxed
    uint8 RGB tensor."""
    image = tf.image.resize_with_pad(tf.cast(checked_decode(encoded), tf.float32), stored_size,
                                     stored_size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def decode_transformed_image(png: tf.Tensor, stored_size: int) -> tf.Tensor:
    """PNG bytes written by the Transform → float32 [stored_size, stored_size, 3] in 0..255."""
    image = tf.ensure_shape(tf.io.decode_png(png, channels=3), [stored_size, stored_size, 3])
    return tf.cast(image, tf.float32)


def _encode_images(encoded: tf.Tensor, stored_size: int) -> tf.Tensor:
    return tf.map_fn(lambda b: tf.io.encode_png(decode_and_resize(b, stored_size)), encoded,
                     fn_output_signature=tf.TensorSpec([], tf.string))


def vocabulary_ids(values: tf.SparseTensor, vocab_filename: str) -> tf.Tensor:
    """[batch] vocabulary ids of an optional single-valued string feature; -1 where it is
    absent. The vocabulary (``vocab_filename``) is computed over the training data."""
    ids = tft.compute_and_apply_vocabulary(values, vocab_filename=vocab_filename,
                                           default_value=-1)
    dense = tft.sparse_tensor_to_dense_with_shape(ids, [None, 1], default_value=-1)
    return tf.squeeze(dense, axis=1)


def first_value(values: tf.SparseTensor, default: str = "") -> tf.Tensor:
    """[batch] first value of an optional string feature (``default`` where it is absent)."""
    dense = tf.sparse.to_dense(tf.sparse.reset_shape(values, [values.dense_shape[0], 1]),
                               default_value=default)
    return tf.squeeze(dense, axis=1)


def multi_hot(values: tf.SparseTensor, vocabulary: Sequence[str]) -> tf.Tensor:
    """[batch, len(vocabulary)] float multi-hot of a string list feature (closed vocabulary;
    values outside it, which the schema already refuses, are ignored)."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(vocabulary)),
                                            tf.range(len(vocabulary), dtype=tf.int64)),
        default_value=-1)
    ids = table.lookup(values.values)
    rows = values.indices[:, 0]
    known = ids >= 0
    hot = tf.one_hot(tf.boolean_mask(ids, known), len(vocabulary), dtype=tf.float32)
    batch = tf.cast(values.dense_shape[0], tf.int32)
    counts = tf.math.unsorted_segment_sum(hot, tf.cast(tf.boolean_mask(rows, known), tf.int32),
                                          batch)
    return tf.minimum(counts, 1.0)


def label_weight(labels: tf.Tensor) -> tf.Tensor:
    """[batch] 1.0 where an example is labelled, else 0.0: a single-label id >= 0, or a
    multi-hot row with at least one entry on."""
    if labels.shape.rank == 2:
        return tf.cast(tf.reduce_max(labels, axis=1) > 0, tf.float32)
    return tf.cast(labels >= 0, tf.float32)


def with_label_weight(label_feature: str, labels: tf.Tensor) -> dict:
    """``{label_feature: labels, <its weight feature>: label_weight(labels)}``."""
    return {label_feature: labels, F.label_weight_feature(label_feature): label_weight(labels)}


def preprocessing_fn(inputs, custom_config):
    """TFX Transform entry point (``preprocessing_fn='trainer.preprocessing.preprocessing_fn'``).

    ``custom_config``: ``stored_size`` (int) and ``fragments`` (dotted paths of the families'
    Transform fragments, merged in order; two fragments may not write the same feature).
    """
    stored_size = int(custom_config["stored_size"])
    encoded = inputs[F.IMAGE_ENCODED]
    if encoded.shape.rank == 2:
        encoded = tf.squeeze(encoded, axis=1)
    outputs = {F.TRANSFORMED_IMAGE: _encode_images(encoded, stored_size)}
    for path in custom_config.get("fragments", ()):
        produced = resolve(path)(inputs, custom_config)
        clash = sorted(set(produced) & set(outputs))
        if clash:
            raise ValueError(f"Transform fragment {path} writes features already written: {clash}")
        outputs.update(produced)
    return outputs
