"""TF Transform ``preprocessing_fn``: the deterministic image and label work, done once.

Images are decoded (JPEG/PNG/GIF/BMP, any channel count, to RGB), letterboxed to a square of
``custom_config['image_size']`` (aspect ratio kept, zero padding) and re-encoded as PNG, so
transformed examples stay compact (a uint8 PNG, not float32 pixels) and lossless. Category and
brand labels become vocabulary ids; attributes become a multi-hot vector over the closed
attribute vocabulary. The same graph runs inside the exported model's serving signatures, which
is what keeps training and serving preprocessing identical.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from schemas import features as F


def _bytes_at(header: tf.Tensor, start: int, count: int, little_endian: bool) -> tf.Tensor:
    """Unsigned integer stored in ``header[start:start+count]`` (header: uint8 vector)."""
    digits = tf.cast(header[start:start + count], tf.int64)
    weights = tf.constant([256 ** i for i in range(count)], tf.int64)
    return tf.reduce_sum(digits * (weights if little_endian else tf.reverse(weights, [0])))


def declared_pixel_count(encoded: tf.Tensor) -> tf.Tensor:
    """Width × height an encoded image declares in its header, read without decoding it.

    PNG (IHDR), GIF (logical screen), BMP (DIB header) and JPEG (SOF marker) are read; other
    byte strings give 0 and are left to the decoder, which rejects them.
    """
    header = tf.io.decode_raw(tf.strings.substr(tf.strings.join([encoded, b"\0" * 32]), 0, 32),
                              tf.uint8)

    def starts_with(magic: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(encoded, 0, len(magic)), magic)

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded, output_type=tf.int32)
        return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)

    zero = tf.constant(0, tf.int64)
    return tf.case([
        (starts_with(b"\x89PNG"), lambda: _bytes_at(header, 16, 4, False)
         * _bytes_at(header, 20, 4, False)),
        (starts_with(b"GIF8"), lambda: _bytes_at(header, 6, 2, True) * _bytes_at(header, 8, 2,
                                                                                True)),
        (starts_with(b"BM"), lambda: _bytes_at(header, 18, 4, True) * tf.abs(
            _bytes_at(header, 22, 4, True) - tf.cast(
                _bytes_at(header, 22, 4, True) >= 2 ** 31, tf.int64) * 2 ** 32)),
        (starts_with(b"\xff\xd8"), jpeg),
    ], default=lambda: zero, exclusive=True)


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes one encoded image to an ``image_size``² letterboxed uint8 RGB tensor.

    An image whose header declares more than ``MAX_IMAGE_PIXELS`` pixels fails with an
    InvalidArgumentError before anything is allocated for its pixels (decompression bombs).
    """
    pixels = declared_pixel_count(encoded)
    check = tf.debugging.assert_less_equal(
        pixels, tf.constant(F.MAX_IMAGE_PIXELS, tf.int64),
        message=f"image too large: it declares more than {F.MAX_IMAGE_PIXELS} pixels "
                "(decompression bomb?); pixels declared:")
    with tf.control_dependencies([check]):
        encoded = tf.identity(encoded)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize_with_pad(tf.cast(image, tf.float32), image_size, image_size,
                                     antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _encode_images(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    return tf.map_fn(lambda b: tf.io.encode_png(decode_and_resize(b, image_size)), encoded,
                     fn_output_signature=tf.TensorSpec([], tf.string))


def _single_label_ids(values: tf.SparseTensor, vocab_filename: str) -> tf.Tensor:
    """Vocabulary ids of an optional single-valued string feature; -1 where it is absent."""
    ids = tft.compute_and_apply_vocabulary(values, vocab_filename=vocab_filename,
                                           default_value=-1)
    dense = tft.sparse_tensor_to_dense_with_shape(ids, [None, 1], default_value=-1)
    return tf.squeeze(dense, axis=1)


def _super_category(values: tf.SparseTensor) -> tf.Tensor:
    """[batch] super-category name of a garment category feature ("" when absent); TFMA slices
    the category evaluation by it."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(F.GARMENT_SUPER_CATEGORY)),
                                            tf.constant(list(F.GARMENT_SUPER_CATEGORY.values()))),
        default_value="")
    dense = tf.sparse.to_dense(tf.sparse.reset_shape(values, [values.dense_shape[0], 1]),
                               default_value="")
    return table.lookup(tf.squeeze(dense, axis=1))


def _multi_hot(values: tf.SparseTensor, vocabulary) -> tf.Tensor:
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


def preprocessing_fn(inputs, custom_config):
    """TFX Transform entry point (``preprocessing_fn='trainer.preprocessing.preprocessing_fn'``)."""
    image_size = int(custom_config["image_size"])
    encoded = inputs[F.IMAGE_ENCODED]
    if encoded.shape.rank == 2:
        encoded = tf.squeeze(encoded, axis=1)
    outputs = {F.TRANSFORMED_IMAGE: _encode_images(encoded, image_size)}
    if F.IMAGE_CLASS_TEXT in inputs:
        outputs[F.CATEGORY_LABEL] = _single_label_ids(inputs[F.IMAGE_CLASS_TEXT],
                                                      F.CATEGORY_VOCABULARY)
        outputs[F.SUPER_CATEGORY_FEATURE] = _super_category(inputs[F.IMAGE_CLASS_TEXT])
    if F.BRAND in inputs:
        outputs[F.BRAND_LABEL] = _single_label_ids(inputs[F.BRAND], F.BRAND_VOCABULARY)
    if F.ATTRIBUTES in inputs:
        outputs[F.ATTRIBUTE_LABELS] = _multi_hot(inputs[F.ATTRIBUTES], F.ATTRIBUTE_VOCABULARY)
    for label, weight in F.LABEL_WEIGHT_FEATURES.items():
        if label in outputs:
            outputs[weight] = label_weight(outputs[label])
    return outputs


def label_weight(labels: tf.Tensor) -> tf.Tensor:
    """[batch] 1.0 where an example is labelled, else 0.0: a single-label id >= 0, or a
    multi-hot row with at least one attribute on."""
    if labels.shape.rank == 2:
        return tf.cast(tf.reduce_max(labels, axis=1) > 0, tf.float32)
    return tf.cast(labels >= 0, tf.float32)
