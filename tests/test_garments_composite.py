"""The garments composite (detect → crop → classify) on stand-in SavedModels that answer like the
real families' exports: a detector with fixed boxes, a category model (and brand model) naming
an image's dominant colour and a tagger tagging bright and wide crops. What is checked is the
composite's own work: which detections are classified, the crop each classifier sees (the box
widened by the margin), how answers come back one per detection slot, and that they equal what
the separate models answer on the same crops."""

import io

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from schemas.serving_api import SERVING_DEFAULT, SERVING_IMAGES  # noqa: E402
from trainer.composites.garments import model as garments  # noqa: E402

# Two detections over 0.5 and one under it, as the detector answers (sorted by score).
BOXES = [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0], [0, 0, 0, 0]]
SCORES = [0.9, 0.8, 0.3, 0.0]


class FakeDetector(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def serve(self, inputs):
        batch = tf.shape(inputs)[0]
        tile = lambda v: tf.tile(tf.constant(v, tf.float32)[None], [batch] + [1] * len(  # noqa
            np.shape(v)))
        return {"detection_boxes": tile(BOXES), "detection_scores": tile(SCORES),
                "detection_classes": tile([1.0, 2.0, 4.0, 0.0]),
                "num_detections": tf.fill([batch], 3.0)}


class FakeClassifier(tf.Module):
    """top_class: the crop's dominant channel (after ``bias``); tags: [bright, wide] as 0/1."""

    def __init__(self, bias=(0.0, 0.0, 0.0)):
        super().__init__()
        self.bias = tf.constant(bias, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(self, images):
        # A real classifier fails on an empty batch (batch normalisation): so does this one.
        tf.debugging.assert_positive(tf.size(images), message="empty batch")

        def describe(png):
            image = tf.cast(tf.io.decode_png(png, channels=3), tf.float32)
            mean = tf.reduce_mean(image, axis=[0, 1])
            shape = tf.cast(tf.shape(image), tf.float32)
            return mean, shape[:2]
        means, sizes = tf.map_fn(describe, images, fn_output_signature=(
            tf.TensorSpec([3], tf.float32), tf.TensorSpec([2], tf.float32)))
        names = tf.constant(["red", "green", "blue"])
        scores = tf.nn.softmax(means / 50.0 + self.bias)
        return {"scores": scores, "classes": tf.tile(names[None], [tf.shape(images)[0], 1]),
                "top_class": tf.gather(names, tf.argmax(scores, axis=1)),
                "top_score": tf.reduce_max(scores, axis=1),
                "tags": tf.stack([tf.cast(tf.reduce_max(means, axis=1) > 150, tf.float32),
                                  tf.cast(sizes[:, 1] > sizes[:, 0], tf.float32)], axis=1),
                "crop_sizes": sizes}


def _save(module, function, name, path, class_names=None):
    tf.saved_model.save(module, str(path), signatures={name: function.get_concrete_function()})
    if class_names:
        (path / "assets.extra").mkdir()
        (path / "assets.extra" / "class_names.txt").write_text("\n".join(class_names) + "\n")
    return str(path)


def _png(pixels) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


COLOURS = ["red", "green", "blue"]


def _parts(folder, detector=None, category=None):
    """Saved stand-ins for the four models the composite takes."""
    detector, classifier = detector or FakeDetector(), FakeClassifier()
    category = category or classifier
    return {"detector": _save(detector, detector.serve, SERVING_DEFAULT, folder / "detector"),
            "category": _save(category, category.serve, SERVING_IMAGES, folder / "category",
                              COLOURS),
            "attributes": _save(classifier, classifier.serve, SERVING_IMAGES,
                                folder / "attributes", ["look:bright", "shape:wide"]),
            "brand": _save(classifier, classifier.serve, SERVING_IMAGES, folder / "brand",
                           COLOURS)}


def _picture() -> bytes:
    image = np.zeros((40, 80, 3))
    image[:20, :40] = (250, 0, 0)  # top-left quarter red and bright
    image[20:, 40:] = (0, 0, 90)  # bottom-right quarter dark blue
    return _png(image)


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("garments")
    dirs = _parts(folder)
    export = str(folder / "composite")
    garments.build(dirs, export, warmup_images=[_picture()])  # checked against the parts
    return tf.saved_model.load(export), _picture(), dirs, export


def test_each_confident_detection_is_cropped_and_classified(composite):
    loaded, image, _, _ = composite
    out = loaded.signatures[SERVING_DEFAULT](inputs=tf.constant([image, image]))
    assert out["classified_detections"].numpy().tolist() == [2.0, 2.0]
    categories = out[garments.CATEGORIES].numpy()
    assert categories.shape == (2, 4, 3)  # top 3 per detection slot
    assert [c.decode() for c in categories[0][:, 0]] == ["red", "blue", "", ""]
    scores = out[garments.CATEGORY_SCORES].numpy()[0]
    assert (np.diff(scores[:2], axis=1) <= 0).all() and not scores[2:].any()
    assert out[garments.BRAND].numpy().tolist() == [b"red", b"red"]  # the whole image
    tags = out[garments.ATTRIBUTES].numpy()
    assert tags.shape == (2, 4, 2)
    assert tags[0, 0, 0] == 1.0 and tags[0, 1, 0] == 0.0  # the red quarter is bright
    assert not tags[0, 2:].any()  # the weak and the empty slots are not classified
    assert [n.decode() for n in out[garments.ATTRIBUTE_NAMES].numpy()[1]] == [
        "look:bright", "shape:wide"]
    np.testing.assert_allclose(out["detection_scores"].numpy()[0], SCORES)


def test_the_crop_is_the_box_widened_by_the_margin_and_clamped(composite):
    """The top-left box [0, 0, .5, .5] of an 80×40 image widened by 10 % of its size: 44×22
    pixels (clamped at the image's top-left corner)."""
    loaded, image, _, _ = composite
    out = loaded.signatures[SERVING_DEFAULT](inputs=tf.constant([image]))
    wide = out[garments.ATTRIBUTES].numpy()[0, :2, 1]
    assert wide.tolist() == [1.0, 1.0]  # both crops are wider than tall, as their boxes are
    png = garments._crop(tf.zeros([40, 80, 3], tf.uint8), tf.constant([0.0, 0.0, 0.5, 0.5]),
                         0.1)
    assert tf.io.decode_png(png).shape[:2] == (22, 44)
    png = garments._crop(tf.zeros([40, 80, 3], tf.uint8), tf.constant([0.25, 0.25, 0.75, 0.75]),
                         0.1)
    assert tf.io.decode_png(png).shape[:2] == (24, 48)  # 10..34 × 20..68
    tiny = garments._crop(tf.zeros([40, 80, 3], tf.uint8), tf.constant([0.5, 0.5, 0.5, 0.5]),
                          0.1)
    assert tf.io.decode_png(tiny).shape[:2] == (1, 1)


def test_no_confident_detection_classifies_nothing(tmp_path):
    class Empty(FakeDetector):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def serve(self, inputs):
            out = FakeDetector.serve.python_function(self, inputs)
            return dict(out, detection_scores=out["detection_scores"] * 0.1)
    dirs = _parts(tmp_path, detector=Empty())
    garments.build(dirs, str(tmp_path / "composite"), warmup_images=[_picture()])
    loaded = tf.saved_model.load(str(tmp_path / "composite"))
    out = loaded.signatures[SERVING_DEFAULT](inputs=tf.constant([_png(np.zeros((8, 8, 3)))]))
    assert out["classified_detections"].numpy().tolist() == [0.0]
    assert out[garments.CATEGORIES].shape == (1, 4, 3)
    garments.check_answer({k: v.numpy() for k, v in out.items()}, 1)


def test_a_composite_that_answers_unlike_its_parts_is_refused(composite, tmp_path):
    """The check ``build`` runs: against a category model that answers otherwise (the same
    crops, another top class), the composite's answers differ and it is refused."""
    _, image, dirs, export = composite
    garments.check_against_parts(export, dirs, [image])  # its own parts: equal
    other = _parts(tmp_path, category=FakeClassifier(bias=(-10.0, 10.0, 0.0)))
    with pytest.raises(ValueError, match="garment_categor"):
        garments.check_against_parts(export, {**dirs, "category": other["category"]}, [image])


def test_the_answer_check_refuses_a_broken_answer():
    with pytest.raises(ValueError, match="lacks"):
        garments.check_answer({"detection_boxes": np.zeros((1, 4, 4))}, 1)
