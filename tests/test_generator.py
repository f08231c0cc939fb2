"""The synthetic catalog: deterministic, varied, exactly labelled."""

import collections
import io

import numpy as np
import pytest
from PIL import Image

from components.catalog_import.records import from_example, to_example
from components.synthetic_catalog import generator
from schemas import features as F

SIZE = 128


@pytest.fixture(scope="module")
def records():
    return list(generator.generate(seed=3, count=120, size=SIZE))


def test_same_seed_and_index_give_identical_records():
    first = generator.render(11, 5, SIZE)
    again = generator.render(11, 5, SIZE)
    assert first == again
    assert generator.render(12, 5, SIZE).encoded != first.encoded
    # Index i does not depend on the images before it.
    assert list(generator.generate(11, 1, SIZE, start=5))[0] == first


def test_rendering_in_several_processes_gives_the_same_records_in_order():
    alone = list(generator.generate(11, 40, SIZE))
    assert list(generator.generate(11, 40, SIZE, workers=2)) == alone


def test_catalog_is_varied(records):
    garments = collections.Counter(o.garment for r in records for o in r.objects)
    assert len(garments) >= 12
    supers = {F.GARMENT_SUPER_CATEGORY[g] for g in garments}
    assert supers == set(F.SUPER_CATEGORIES)
    assert len({r.brand for r in records}) == len(generator.BRANDS) >= 6
    patterns = {a for r in records for a in r.attributes if a.startswith("pattern:")}
    assert len(patterns) == len(F.PATTERNS)
    assert any(a.startswith("item:") and a[5:] in F.ACCESSORIES
               for r in records for a in r.attributes)
    counts = [len(r.objects) for r in records]
    assert min(counts) >= 1 and max(counts) <= 3


def test_boxes_are_exact_extents_of_the_segmentation(records):
    for record in records[:30]:
        seg = np.asarray(Image.open(io.BytesIO(record.segmentation_png)))
        assert seg.shape == (SIZE, SIZE)
        for obj in record.objects:
            ys, xs = np.nonzero(seg == F.SEGMENTATION_CLASS_IDS[obj.garment])
            # Accessories may hide garment pixels, never enlarge the box.
            x0, y0, x1, y1 = (round(v * SIZE) for v in obj.box)
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1


def test_main_garment_labels_and_caption(records):
    for record in records:
        assert record.category in {o.garment for o in record.objects}
        assert F.attribute("item", record.category) in record.attributes
        colors = [a for a in record.attributes if a.startswith("color:")]
        patterns = [a for a in record.attributes if a.startswith("pattern:")]
        assert len(colors) == 1 and len(patterns) == 1
        assert record.caption.startswith("a person wearing")
        assert record.category.replace("_", "-") in record.caption
        image = Image.open(io.BytesIO(record.encoded))
        assert image.size == (SIZE, SIZE) and image.mode == "RGB"


def test_brand_identity_is_a_tendency(records):
    by_brand = collections.defaultdict(collections.Counter)
    for record in records:
        color = next(a[6:] for a in record.attributes if a.startswith("color:"))
        by_brand[record.brand][color] += 1
    for brand in generator.BRANDS:
        seen = by_brand[brand.name]
        if sum(seen.values()) < 10:
            continue
        in_palette = sum(seen[c] for c in brand.palette) / sum(seen.values())
        assert 0.4 < in_palette < 1.0, (brand.name, seen)


def test_record_round_trips_through_tf_example(records):
    record = records[0]
    assert from_example(to_example(record)) == record


def test_main_garment_rule():
    from components.catalog_import.records import choose_main_garment
    # The outermost garment wins when it is substantially visible...
    assert choose_main_garment({"t_shirt": 900, "jeans": 1500, "sneakers": 200}, 10_000) == \
        "t_shirt"
    assert choose_main_garment({"dress": 800, "jacket": 2000}, 10_000) == "dress"
    # ...but a bottoms shot that barely shows the top is about the bottoms.
    assert choose_main_garment({"t_shirt": 100, "jeans": 5000}, 10_000) == "jeans"
    # Within a super-category the larger area wins; tags without pixels use canonical order.
    assert choose_main_garment({"blouse": 600, "vest": 900}, 10_000) == "vest"
    assert choose_main_garment({"skirt": 1, "blouse": 1}) == "blouse"
    assert choose_main_garment({"bag": 5000}) is None
    assert choose_main_garment({"t_shirt": 10, "jeans": 20}, 10_000) == "jeans"


def test_framings_are_all_used(records):
    boxes_top = [min(o.box[1] for o in r.objects) for r in records]
    # Waist-down shots start at the waist: some garment touches the top edge.
    assert any(top == 0.0 for top in boxes_top)
    assert any(top > 0.05 for top in boxes_top)
