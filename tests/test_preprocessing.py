"""Deterministic Transform helpers that need no Beam run: label weights, the attribute
fragment's partial labels, and the decode-cost checks that stop decompression bombs."""

import io
import struct

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from components.catalog_import import images  # noqa: E402
from schemas import features as F  # noqa: E402
from schemas import image_headers  # noqa: E402
from trainer import preprocessing  # noqa: E402
from trainer.families.attributes import transform as attributes_transform  # noqa: E402


def test_label_weight_marks_labelled_single_label_examples():
    weights = preprocessing.label_weight(tf.constant([3, -1, 0, -1], tf.int64))
    np.testing.assert_array_equal(weights.numpy(), [1.0, 0.0, 1.0, 0.0])
    assert weights.dtype == tf.float32


def test_label_weight_marks_multi_hot_rows_with_any_attribute():
    labels = tf.constant([[0.0, 1.0, -1.0], [0.0, 0.0, -1.0], [1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(preprocessing.label_weight(labels).numpy(), [1.0, 0.0, 1.0])


def test_attribute_families_a_record_does_not_annotate_are_unknown():
    """Unknown is not negative: a photo tagged only with items says nothing about colours."""
    values = tf.sparse.from_dense(tf.constant([[b"item:bag", b"item:dress"],
                                               [b"color:red", b"pattern:solid"]]))
    labels = attributes_transform.transform_fn({F.ATTRIBUTES: values}, {})
    rows = labels["attribute_labels"].numpy()
    names = list(F.ATTRIBUTE_VOCABULARY)
    families = np.array([n.split(":")[0] for n in names])
    assert rows[0, names.index("item:bag")] == 1 and rows[0, names.index("item:shoes")] == 0
    assert (rows[0, families != "item"] == -1).all()  # colours, patterns... unknown
    assert rows[1, names.index("color:red")] == 1 and rows[1, names.index("color:blue")] == 0
    assert (rows[1, families == "item"] == -1).all() and (rows[1, families == "sleeve"] == -1).all()
    np.testing.assert_array_equal(labels["attribute_labels_weight"].numpy(), [1.0, 1.0])


def _gif(frames=1, side=48):
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (side, side, 3), np.uint8)).convert("P")
                for _ in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=frames > 1, append_images=pictures[1:])
    return buffer.getvalue()


def gif_with_frames(screen, frames):
    """A GIF whose logical screen is ``screen``² and whose frames declare the given sizes (each
    with a one-byte LZW stream): what a bomb looks like to a header check."""
    data = b"GIF89a" + struct.pack("<HHBBB", screen, screen, 0, 0, 0)
    for width, height in frames:
        data += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control extension
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        data += b"\x02\x02\x4c\x01\x00"  # LZW minimum code size, one sub-block, terminator
    return data + b";"


GIF_CASES = [
    ("one frame", _gif(), 48 * 48, 1),
    ("animated", _gif(frames=5), 5 * 48 * 48, 5),
    ("frame larger than the screen", gif_with_frames(64, [(8000, 8000)]), 64_000_000, 1),
    ("many frames", gif_with_frames(16, [(16, 16)] * 900), 900 * 256, 900),
    ("frames × screen", gif_with_frames(4000, [(1, 1)] * 4), 4 * 16_000_000, 4),
]


@pytest.mark.parametrize("name,data,pixels,frames", GIF_CASES, ids=[c[0] for c in GIF_CASES])
def test_gif_decode_cost_counts_every_frame_in_the_graph_and_in_python(name, data, pixels,
                                                                       frames):
    graph_pixels, graph_frames = preprocessing.declared_decode_cost(tf.constant(data))
    assert (int(graph_pixels), int(graph_frames)) == (pixels, frames)
    assert image_headers.gif_decode_cost(data) == (pixels, frames)


@pytest.mark.parametrize("data,message", [
    (gif_with_frames(64, [(8000, 8000)]), "pixels to decode"),
    (gif_with_frames(16, [(16, 16)] * (F.MAX_GIF_FRAMES + 1)), "frames"),
    (gif_with_frames(5000, [(10, 10)] * 2), "pixels to decode"),  # 2 x 25 MP canvases
])
def test_gif_bombs_fail_before_decoding(data, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        preprocessing.decode_and_resize(tf.constant(data), 32)
    with pytest.raises(images.RejectedInput) as err:
        images.normalize_image(data)
    assert err.value.reason == "decompression_bomb"


def test_a_gif_of_tiny_sub_blocks_is_refused_as_malformed():
    body = b"\x2c" + struct.pack("<HHHHB", 0, 0, 8, 8, 0) + b"\x02" + b"\x01\x00" * 20000
    data = b"GIF89a" + struct.pack("<HHBBB", 8, 8, 0, 0, 0) + body + b"\x00;"
    pixels, _ = preprocessing.declared_decode_cost(tf.constant(data))
    assert int(pixels) > F.MAX_IMAGE_PIXELS
    assert image_headers.gif_decode_cost(data)[0] > F.MAX_IMAGE_PIXELS


def test_ordinary_gifs_still_decode():
    image = preprocessing.decode_and_resize(tf.constant(_gif(frames=3)), 32)
    assert image.shape == (32, 32, 3)
    assert images.normalize_image(_gif(frames=3)).pixels.shape == (48, 48, 3)


def _encoded(format_name, size=(37, 23), **options):
    buffer = io.BytesIO()
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3),
                                                                np.uint8))
    picture.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def _jpeg_with_exif_thumbnail():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation, so the APP1 segment comes before the frame header
    return _encoded("JPEG", exif=exif.tobytes() + b"\0" * 3000)


HEADER_CASES = [
    ("png", _encoded("PNG"), 37 * 23),
    ("jpeg", _encoded("JPEG"), 37 * 23),
    ("progressive jpeg", _encoded("JPEG", progressive=True), 37 * 23),
    ("jpeg with a large APP1 segment", _jpeg_with_exif_thumbnail(), 37 * 23),
    ("bmp", _encoded("BMP"), 37 * 23),
    ("gif", _encoded("GIF"), 37 * 23),
    ("png declaring 60000²", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + struct.pack(">II", 60000, 60000)
     + b"\x08\x02\0\0\0", 3_600_000_000),
]


@pytest.mark.parametrize("name,data,pixels", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_python_and_graph_read_the_same_declared_size(name, data, pixels):
    graph_pixels, graph_frames = preprocessing.declared_decode_cost(tf.constant(data))
    assert (int(graph_pixels), int(graph_frames)) == (pixels, 1)
    assert image_headers.declared_decode_cost(data) == (pixels, 1)


def test_bytes_that_are_no_image_have_no_declared_size():
    assert image_headers.declared_decode_cost(b"a caption, not an image") is None
    assert image_headers.declared_decode_cost(b"") is None
    assert image_headers.declared_decode_cost(b"\xff\xd8\xff") == (0, 1)  # truncated JPEG
