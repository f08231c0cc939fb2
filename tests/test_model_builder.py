"""The category classifier on the EfficientNet trunk, and the weights policy."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from trainer import augmentation, training, weights  # noqa: E402
from trainer.backbones import efficientnet  # noqa: E402
from trainer.families.category.model import build_classifier  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return build_classifier(
        5, variant="b0", source_size=32, dropout=0.2,
        augment=augmentation.augmentation(rotation=0.1, zoom=0.1, translation=0.1, seed=1))


def test_output_is_a_distribution_over_classes(model):
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    scores = np.asarray(model(images, training=False))
    assert scores.shape == (3, 5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


def test_augmentation_only_acts_in_training(model):
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    augment = model.get_layer("augmentation")
    np.testing.assert_array_equal(np.asarray(augment(images, training=False)), images)
    assert not np.allclose(np.asarray(augment(images, training=True)), images)
    first = np.asarray(model(images, training=False))
    np.testing.assert_allclose(np.asarray(model(images, training=False)), first, rtol=1e-6)


def test_input_is_resized_to_the_backbone_size():
    model = build_classifier(3, variant="b0", source_size=32, backbone_size=48)
    assert model.get_layer("resize").output.shape[1:3] == (48, 48)
    assert model.input_shape == (None, 32, 32, 3)


def test_backbone_variants_and_errors():
    assert set(efficientnet.BACKBONES) == {f"b{i}" for i in range(8)}
    with pytest.raises(ValueError, match="variant"):
        build_classifier(3, variant="b9", source_size=32)
    with pytest.raises(ValueError, match="2 classes"):
        build_classifier(1, source_size=32)


def test_local_weights_file_is_loaded(tmp_path):
    source = efficientnet.backbone("b0", 32)
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    loaded = weights.build_with_weights(
        lambda w: build_classifier(3, source_size=32, weights=w), path)
    backbone = [layer for layer in loaded.layers if layer.name.startswith("efficientnet")][0]
    for expected, actual in zip(source.weights, backbone.weights):
        np.testing.assert_array_equal(np.asarray(expected), np.asarray(actual))
    fresh = build_classifier(3, source_size=32)
    fresh_backbone = [layer for layer in fresh.layers if layer.name.startswith("efficientnet")][0]
    assert not all(np.array_equal(np.asarray(a), np.asarray(b))
                   for a, b in zip(source.weights, fresh_backbone.weights))


def test_missing_weights_file_fails_clearly(tmp_path):
    with pytest.raises(weights.WeightsUnavailableError, match="does not exist"):
        weights.resolve_weights(str(tmp_path / "nope.weights.h5"))


def test_imagenet_weights_offline_fail_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights
    with pytest.raises(weights.WeightsUnavailableError, match="weights='none'"):
        weights.build_with_weights(
            lambda w: build_classifier(3, source_size=32, weights=w), "imagenet")


def test_optimizers():
    assert isinstance(training.optimizer("adam", 1e-3), keras.optimizers.Adam)
    assert isinstance(training.optimizer("rmsprop", 1e-3), keras.optimizers.RMSprop)
    adamw = training.optimizer("adamw", 1e-3)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.01


def test_batchnorm_momentum_override():
    model = build_classifier(3, source_size=32, batchnorm_momentum=0.9)
    backbone = [layer for layer in model.layers if layer.name.startswith("efficientnet")][0]
    momenta = {layer.momentum for layer in backbone.layers
               if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
