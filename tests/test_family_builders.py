"""The attribute tagger, the VGG16 spatial-attention brand model and the transfer modes."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from trainer import augmentation, transfer  # noqa: E402
from trainer.families.attributes import model as attributes  # noqa: E402
from trainer.families.brand import model as brand_attention  # noqa: E402
from trainer.families.brand.config import BrandConfig  # noqa: E402


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_brand_model_has_the_studys_exact_parameter_counts():
    model = brand_attention.build_brand_classifier(
        6, backbone_size=224, augment=augmentation.from_config(BrandConfig().augmentation, 0))
    assert model.count_params() == 15_275_463
    assert _count(model.trainable_weights) == 560_775
    assert _count(model.non_trainable_weights) == 14_714_688


def test_brand_attention_map_is_a_spatial_distribution():
    model = brand_attention.build_brand_classifier(3, backbone_size=64)
    scores, attention = brand_attention.attention_model(model)(
        np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32"))
    assert scores.shape == (2, 3) and attention.shape == (2, 8, 8)
    np.testing.assert_allclose(np.asarray(attention).sum(axis=(1, 2)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(scores).sum(axis=1), 1.0, rtol=1e-5)


def test_brand_training_moves_only_the_attention_and_head(tmp_path):
    model = brand_attention.build_brand_classifier(2, backbone_size=32)
    frozen = [np.array(w) for w in model.non_trainable_weights]
    head = [np.array(w) for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(images, np.array([0, 1] * 4), epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(frozen,
                                                              model.non_trainable_weights))
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(head, model.trainable_weights))
    path = str(tmp_path / "brand.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)


def test_random_vgg16_features_still_differ_between_images():
    # Glorot-initialised VGG16 (Keras' default) gives near-constant features without ImageNet
    # weights; the He-normal re-initialisation keeps them informative.
    model = brand_attention.build_brand_classifier(6, backbone_size=64)
    pooled = keras.Model(model.inputs, model.get_layer("global_max_pool").output)(
        np.random.default_rng(0).uniform(0, 255, (8, 64, 64, 3)).astype("float32"))
    pooled = np.asarray(pooled)
    assert pooled.mean() > 1e-3
    assert pooled.std(axis=0).mean() / pooled.mean() > 0.01


def test_fine_tuning_the_brand_model_thaws_both_vgg_parts():
    model = brand_attention.build_brand_classifier(6, backbone_size=32)
    backbones = transfer.find_backbones(model)
    assert [b.name for b in backbones] == ["vgg16_to_block4_conv3",
                                           "vgg16_block4_pool_to_block5_pool"]
    transfer.set_trainable_layers(backbones, None)
    assert _count(model.trainable_weights) == model.count_params()
    transfer.set_trainable_layers(backbones, 3)  # block5_conv2, block5_conv3, block5_pool
    assert _count(model.trainable_weights) == 560_775 + 2 * (3 * 3 * 512 * 512 + 512)
    transfer.set_trainable_layers(backbones, 0)
    assert _count(model.trainable_weights) == 560_775


@pytest.mark.parametrize("backbone_size,brands", [(100, 6), (224, 1)])
def test_brand_model_rejects_bad_shapes(backbone_size, brands):
    with pytest.raises(ValueError):
        brand_attention.build_brand_classifier(brands, backbone_size=backbone_size)


def test_attribute_tagger_gives_independent_probabilities():
    model = attributes.build_attribute_tagger(7, source_size=32)
    scores = np.asarray(model(np.zeros((3, 32, 32, 3), "float32")))
    assert scores.shape == (3, 7) and ((scores > 0) & (scores < 1)).all()


def test_soft_f1_loss():
    truth = np.array([[1, 0, 1], [0, 1, 1]], "float32")
    assert float(attributes.soft_f1_loss(truth, truth)) == pytest.approx(0.0, abs=1e-5)
    assert float(attributes.soft_f1_loss(truth, 1.0 - truth)) == pytest.approx(1.0, abs=1e-5)
    middle = float(attributes.soft_f1_loss(truth, np.full_like(truth, 0.5)))
    assert 0.2 < middle < 0.8


def test_losses_ignore_unknown_attributes():
    """-1 marks an attribute whose family the record does not annotate: whatever the model
    says there changes neither loss."""
    truth = np.array([[1, 0, -1, -1], [0, 1, -1, 0]], "float32")
    scores = np.array([[0.9, 0.2, 0.5, 0.5], [0.3, 0.7, 0.5, 0.4]], "float32")
    other = scores.copy()
    other[truth < 0] = np.array([0.99, 0.01, 0.99])  # wildly different on unknown entries
    for loss in (attributes.masked_binary_crossentropy, attributes.soft_f1_loss):
        np.testing.assert_allclose(np.asarray(loss(truth, scores)),
                                   np.asarray(loss(truth, other)), rtol=1e-6)
    # ...and on known entries the masked BCE is the plain BCE of those entries.
    known = truth[0] >= 0
    expected = -np.mean(np.log([0.9, 0.8]))
    assert float(attributes.masked_binary_crossentropy(truth[:1], scores[:1])[0]) == \
        pytest.approx(expected, rel=1e-5)
    assert known.sum() == 2


def test_masked_metrics_count_known_entries_only():
    truth = np.array([[1, 0, -1], [0, -1, 1], [-1, 1, 0]], "float32")
    scores = np.array([[0.9, 0.1, 0.9], [0.2, 0.9, 0.1], [0.1, 0.8, 0.7]], "float32")
    # Known entries: tp = (0,0), (2,1); fn = (1,2); fp = (2,2); tn = (0,1), (1,0).
    micro = attributes.MaskedF1Score(3, "micro")
    micro.update_state(truth, scores)
    assert float(micro.result()) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    macro = attributes.MaskedF1Score(3, "macro")
    macro.update_state(truth, scores)
    # per attribute F1: a0 1.0 (tp 1), a1 1.0 (tp 1), a2 0.0 (fn 1, fp 1)
    assert float(macro.result()) == pytest.approx(2 / 3)
    accuracy = attributes.MaskedBinaryAccuracy(3)
    accuracy.update_state(truth, scores)
    assert float(accuracy.result()) == pytest.approx(4 / 6)
    exact = attributes.ExactMatch()
    exact.update_state(truth, scores)
    assert float(exact.result()) == pytest.approx(1 / 3)  # only row 0 is right on all known


def test_decoding_keeps_one_attribute_per_exclusive_group():
    names = ["pattern:solid", "pattern:striped", "color:red", "color:blue", "item:bag"]
    groups = attributes.exclusive_groups(names, ["pattern", "color"])
    assert groups == [[0, 1], [2, 3]]
    scores = np.array([[0.9, 0.8, 0.6, 0.7, 0.9],
                       [0.2, 0.3, 0.1, 0.4, 0.6],
                       [0.5, 0.95, 0.99, 0.98, 0.1]], "float32")
    tags = np.asarray(attributes.decode(scores, groups, threshold=0.5))
    assert tags.tolist() == [[1, 0, 0, 1, 1],
                             [0, 0, 0, 0, 1],
                             [0, 1, 1, 0, 0]]
    # Without groups every score above the threshold is a tag.
    assert np.asarray(attributes.decode(scores, [], 0.5))[0].tolist() == [1, 1, 1, 1, 1]


def test_transfer_phases():
    assert transfer.phases("feature_extraction", 5) == [transfer.Phase(5, 0)]
    assert transfer.phases("fine_tune", 5, fine_tune_layers=100) == [transfer.Phase(5, 100)]
    assert transfer.phases("fine_tune", 5) == [transfer.Phase(5, None)]
    assert transfer.phases("hybrid", 10, 50, frozen_epochs=3) == [
        transfer.Phase(3, 0), transfer.Phase(7, 50)]
    for args in (("hybrid", 3, 10, 3), ("hybrid", 3, 10, 0), ("bogus", 3), ("fine_tune", 0)):
        with pytest.raises(ValueError):
            transfer.phases(*args)


def test_fine_tuning_the_last_layers_keeps_batchnorm_frozen():
    model = attributes.build_attribute_tagger(3, source_size=32)
    backbone = transfer.find_backbone(model)
    assert backbone.name.startswith("efficientnetb0")
    thawed = transfer.set_trainable_layers(backbone, 20)
    last = backbone.layers[-20:]
    assert thawed == sum(not isinstance(layer, keras.layers.BatchNormalization)
                         for layer in last)
    assert all(not layer.trainable for layer in backbone.layers[:-20])
    assert all(not layer.trainable for layer in last
               if isinstance(layer, keras.layers.BatchNormalization))
    transfer.set_trainable_layers(backbone, 0)
    assert not any(layer.trainable for layer in backbone.layers)
    assert transfer.set_trainable_layers(backbone, None) == len(backbone.layers)
    assert all(layer.trainable for layer in backbone.layers)


def test_brand_model_loads_a_local_vgg16_weights_file(tmp_path):
    from trainer.weights import build_with_weights
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    source.save_weights(path)
    model = build_with_weights(
        lambda weights: brand_attention.build_brand_classifier(3, backbone_size=32,
                                                               weights=weights), path)
    loaded = model.get_layer("vgg16_to_block4_conv3").get_layer("block1_conv1").kernel
    np.testing.assert_array_equal(np.asarray(loaded),
                                  np.asarray(source.get_layer("block1_conv1").kernel))
    tail = model.get_layer("vgg16_block4_pool_to_block5_pool").get_layer("block5_conv3").kernel
    np.testing.assert_array_equal(np.asarray(tail),
                                  np.asarray(source.get_layer("block5_conv3").kernel))
