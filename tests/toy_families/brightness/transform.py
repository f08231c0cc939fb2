"""The label: the mean brightness (0..1) of the stored image, computed in Transform."""

import tensorflow as tf

from schemas import features as F
from trainer import preprocessing

BRIGHTNESS = "brightness"


def transform_fn(inputs, custom_config):
    encoded = inputs[F.IMAGE_ENCODED]
    if encoded.shape.rank == 2:
        encoded = tf.squeeze(encoded, axis=1)
    size = int(custom_config["stored_size"])
    images = tf.map_fn(lambda b: tf.cast(preprocessing.decode_and_resize(b, size), tf.float32),
                       encoded, fn_output_signature=tf.float32)
    brightness = tf.reduce_mean(images, axis=[1, 2, 3]) / 255.0
    return {BRIGHTNESS: brightness,
            F.label_weight_feature(BRIGHTNESS): tf.ones_like(brightness)}
