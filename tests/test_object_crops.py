"""Per-garment crop examples (the category family's default examples)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from components.catalog_import.records import to_example  # noqa: E402
from components.object_crops import logic  # noqa: E402
from components.synthetic_catalog import generator  # noqa: E402
from schemas import features as F  # noqa: E402


def _text(example, key):
    return example.features.feature[key].bytes_list.value[0].decode()


def test_crop_box_widens_and_clamps():
    assert logic.crop_box(200, 100, (0.25, 0.2, 0.75, 0.6), 0.1) == (40, 16, 160, 64)
    assert logic.crop_box(200, 100, (0.0, 0.0, 1.0, 1.0), 0.2) == (0, 0, 200, 100)


def test_a_record_becomes_one_example_per_garment_box():
    record = generator.render(7, 3, 128)
    stats = logic.CropStats()
    crops = logic.crops_of(to_example(record), margin=0.1, min_side=4, stats=stats)
    assert len(crops) == len(record.objects) == stats.crops
    for index, (crop, garment) in enumerate(zip(crops, record.objects)):
        assert _text(crop, F.IMAGE_CLASS_TEXT) == garment.garment
        assert _text(crop, F.IMAGE_SOURCE_ID) == f"{record.source_id}#{index}"
        pixels = logic.image_of(crop)
        height = crop.features.feature[F.IMAGE_HEIGHT].int64_list.value[0]
        width = crop.features.feature[F.IMAGE_WIDTH].int64_list.value[0]
        assert pixels.shape == (height, width, 3)
        xmin, ymin, xmax, ymax = garment.box
        assert height >= (ymax - ymin) * 128 and width >= (xmax - xmin) * 128
        # Only the crop's own contract features: no photo-level labels leak into it.
        assert F.ATTRIBUTES not in crop.features.feature and F.BRAND not in crop.features.feature


def test_crops_cut_the_boxed_pixels():
    pixels = np.zeros((100, 100, 3), np.uint8)
    pixels[20:40, 50:90] = (250, 10, 10)
    example = to_example(generator.render(7, 0, 64))
    example.features.feature[F.IMAGE_ENCODED].bytes_list.value[0] = \
        logic.image_io.encode_png(pixels)
    example.features.feature[F.IMAGE_FORMAT].bytes_list.value[0] = b"png"
    for key, value in zip(F.BBOX_KEYS, (0.5, 0.2, 0.9, 0.4)):
        del example.features.feature[key].float_list.value[:]
        example.features.feature[key].float_list.value.append(value)
    del example.features.feature[F.OBJECT_GARMENT_TEXT].bytes_list.value[:]
    example.features.feature[F.OBJECT_GARMENT_TEXT].bytes_list.value.append(b"coat")
    (crop,) = logic.crops_of(example, margin=0.0, min_side=4)
    red = logic.image_of(crop)
    assert red.shape == (20, 40, 3) and (red == (250, 10, 10)).all()


def test_bad_inputs_are_counted_and_skipped(tmp_path):
    good = to_example(generator.render(7, 1, 96))
    broken = to_example(generator.render(7, 2, 96))
    broken.features.feature[F.IMAGE_ENCODED].bytes_list.value[0] = b"\xff\xd8not a jpeg"
    unknown = to_example(generator.render(7, 4, 96))
    unknown.features.feature[F.OBJECT_GARMENT_TEXT].bytes_list.value[0] = b"spacesuit"
    no_boxes = tf.train.Example()
    no_boxes.CopyFrom(good)
    for key in F.BBOX_KEYS + (F.OBJECT_GARMENT_TEXT,):
        del no_boxes.features.feature[key]
    source = str(tmp_path / "in.gz")
    with tf.io.TFRecordWriter(source, options="GZIP") as writer:
        for example in (good, broken, unknown, no_boxes):
            writer.write(example.SerializeToString())
        writer.write(b"\x0a\xff\xff\xff\x0f")  # a field longer than the record: undecodable
    stats = logic.write_split([source], str(tmp_path / "out.gz"), margin=0.1, min_side=1000)
    assert stats.records == 5 and stats.records_with_boxes == 3
    assert sum(n for reason, n in stats.skipped.items() if reason.startswith("image_")) == 1
    assert stats.skipped["unknown_garment"] == 1 and stats.skipped["unparsable_record"] == 1
    assert stats.skipped["box_too_small"] >= 1 and stats.crops == 0  # min_side 1000
    stats = logic.write_split([source], str(tmp_path / "out.gz"), margin=0.1, min_side=4)
    written = list(tf.data.TFRecordDataset(str(tmp_path / "out.gz"), compression_type="GZIP"))
    good_garments = len(generator.render(7, 1, 96).objects)
    unknown_garments = len(generator.render(7, 4, 96).objects) - 1
    assert stats.crops == len(written) == good_garments + unknown_garments
