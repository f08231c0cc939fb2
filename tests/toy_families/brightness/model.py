"""A tiny regressor: linear in the image's mean colour."""

import keras


def build(source_size: int) -> keras.Model:
    inputs = keras.Input((source_size, source_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="mean_colour")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="brightness")(x))
