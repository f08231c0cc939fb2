"""TF Transform ``preprocessing_fn``: the deterministic image and label work, done once.

Images are decoded (JPEG/PNG/GIF/BMP, any channel count, to RGB), letterboxed to a square of
``custom_config['image_size']`` (aspect ratio kept, zero padding) and re-encoded as PNG, so
transformed examples stay compact (a uint8 PNG, not float32 pixels) and lossless. Labels become
vocabulary ids. The same graph runs inside the exported model's serving signatures, which is what
keeps training and serving preprocessing identical.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from schemas import features as F


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes one encoded image to an ``image_size``² letterboxed uint8 RGB tensor."""
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
    return outputs
