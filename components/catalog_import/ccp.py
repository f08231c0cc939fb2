"""Clothing Co-Parsing (CCP) → fashion records.

CCP has 59 labels (``label_list.mat``). Pixel-level photos carry an HxW label map; image-level
photos carry only the list of labels present (``tags``). :data:`CCP_LABEL_MAP` maps each label to
a project garment category or accessory (``None`` for non-garments: null, skin, hair).

Boxes: a CCP photo shows one person, so all fragments of one project category form one
garment (a blouse seen left and right of an open vest, the two legs of a pair of jeans), except
footwear, whose components are the left and right shoe: footwear pixels whose gap is at most
``merge_gap`` (2 % of the longer image side) form one object (connected components of the mask
dilated by that gap), so a shoe cut by a strap stays one object while two shoes standing apart
stay two. Fragments smaller than ``min_area`` (0.05 % of the image) are dropped as annotation
noise. A box is the extent of the component's original (undilated) pixels.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import numpy as np

from components.catalog_import import images as image_io
from components.catalog_import.records import (MAIN_GARMENT_PRIORITY, FashionRecord,
                                               GarmentObject, caption_for, choose_main_garment)
from schemas import features as F

# CCP label id -> (CCP name, project category or accessory, or None for non-objects).
CCP_LABEL_MAP = {
    0: ("null", None), 1: ("accessories", "other_accessory"), 2: ("bag", "bag"),
    3: ("belt", "belt"), 4: ("blazer", "blazer"), 5: ("blouse", "blouse"),
    6: ("bodysuit", "top"), 7: ("boots", "boots"), 8: ("bra", "top"),
    9: ("bracelet", "jewelry"), 10: ("cape", "coat"), 11: ("cardigan", "cardigan"),
    12: ("clogs", "shoes"), 13: ("coat", "coat"), 14: ("dress", "dress"),
    15: ("earrings", "jewelry"), 16: ("flats", "flats"), 17: ("glasses", "eyewear"),
    18: ("gloves", "other_accessory"), 19: ("hair", None), 20: ("hat", "hat"),
    21: ("heels", "heels"), 22: ("hoodie", "hoodie"), 23: ("intimate", "swimwear"),
    24: ("jacket", "jacket"), 25: ("jeans", "jeans"), 26: ("jumper", "sweater"),
    27: ("leggings", "leggings"), 28: ("loafers", "shoes"), 29: ("necklace", "jewelry"),
    30: ("panties", "shorts"), 31: ("pants", "pants"), 32: ("pumps", "heels"),
    33: ("purse", "bag"), 34: ("ring", "jewelry"), 35: ("romper", "jumpsuit"),
    36: ("sandals", "sandals"), 37: ("scarf", "scarf"), 38: ("shirt", "shirt"),
    39: ("shoes", "shoes"), 40: ("shorts", "shorts"), 41: ("skin", None),
    42: ("skirt", "skirt"), 43: ("sneakers", "sneakers"), 44: ("socks", "hosiery"),
    45: ("stockings", "hosiery"), 46: ("suit", "suit"), 47: ("sunglasses", "eyewear"),
    48: ("sweater", "sweater"), 49: ("sweatshirt", "sweater"), 50: ("swimwear", "swimwear"),
    51: ("t-shirt", "t_shirt"), 52: ("tie", "other_accessory"), 53: ("tights", "hosiery"),
    54: ("top", "top"), 55: ("vest", "vest"), 56: ("wallet", "bag"), 57: ("watch", "jewelry"),
    58: ("wedges", "heels"),
}
_SEGMENTATION_REMAP = np.zeros(256, np.uint8)
for _ccp_id, (_name, _target) in CCP_LABEL_MAP.items():
    if _target is not None:
        _SEGMENTATION_REMAP[_ccp_id] = F.SEGMENTATION_CLASS_IDS[_target]
    elif _name in ("skin", "hair"):
        _SEGMENTATION_REMAP[_ccp_id] = F.SEGMENTATION_CLASS_IDS[_name]


def check_label_list(path: str) -> None:
    """Verifies that ``label_list.mat`` names the labels :data:`CCP_LABEL_MAP` expects."""
    from scipy.io import loadmat
    names = [str(x[0]) if len(x) else "" for x in loadmat(path)["label_list"][0]]
    expected = [CCP_LABEL_MAP[i][0] for i in range(len(CCP_LABEL_MAP))]
    if names != expected:
        raise ValueError(f"{path}: unexpected CCP label list {names}")


def garment_components(label_map: np.ndarray, merge_gap: Optional[int] = None,
                       min_area: Optional[int] = None) -> list[tuple[str, tuple]]:
    """Returns ``(category, (x0, y0, x1, y1))`` pixel boxes (x1/y1 exclusive) of garments."""
    from scipy import ndimage
    height, width = label_map.shape
    merge_gap = merge_gap if merge_gap is not None else max(1, round(0.02 * max(height, width)))
    min_area = min_area if min_area is not None else max(1, round(0.0005 * height * width))
    categories = {}
    for ccp_id in np.unique(label_map):
        target = CCP_LABEL_MAP.get(int(ccp_id), ("?", None))[1]
        if target in F.GARMENT_SUPER_CATEGORY:
            categories.setdefault(target, []).append(int(ccp_id))
    structure = np.ones((3, 3), bool)
    boxes = []
    for category in sorted(categories):
        mask = np.isin(label_map, categories[category])
        if F.GARMENT_SUPER_CATEGORY[category] != F.FOOTWEAR:
            labels, count = ndimage.label(mask, structure=structure)
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            kept = np.isin(labels, np.nonzero(sizes >= min_area)[0][1:]) if count else mask
            if kept.any():
                ys, xs = np.nonzero(kept)
                boxes.append((category, (int(xs.min()), int(ys.min()),
                                         int(xs.max()) + 1, int(ys.max()) + 1)))
            continue
        # Footwear: dilate only inside the mask's bounding region (plus the gap), for speed.
        ys, xs = np.nonzero(mask)
        y0, y1 = max(0, ys.min() - merge_gap), min(height, ys.max() + merge_gap + 1)
        x0, x1 = max(0, xs.min() - merge_gap), min(width, xs.max() + merge_gap + 1)
        crop = mask[y0:y1, x0:x1]
        grown = ndimage.binary_dilation(crop, structure=structure, iterations=merge_gap)
        labels, _ = ndimage.label(grown, structure=structure)
        labels = np.where(crop, labels, 0)
        for index, found in enumerate(ndimage.find_objects(labels), start=1):
            if found is None:
                continue
            if int((labels[found] == index).sum()) < min_area:
                continue
            sy, sx = found
            boxes.append((category, (int(sx.start + x0), int(sy.start + y0),
                                     int(sx.stop + x0), int(sy.stop + y0))))
    return boxes


def _attributes_and_caption(present: list[str], order: list[str]):
    items = sorted(set(present))
    attributes = tuple(F.attribute("item", name) for name in items)
    garments = [c for c in order if c in F.GARMENT_SUPER_CATEGORY]
    accessories = [a for a in items if a in F.ACCESSORIES]
    return attributes, caption_for(garments, accessories)


def convert_photo(photo_path: str, annotation_path: str, kind: str) -> FashionRecord:
    """Converts one CCP photo with its ``pixel`` or ``image`` level annotation.

    Raises:
      image_io.RejectedInput: unreadable photo or annotation, or mismatching sizes.
    """
    from scipy.io import loadmat
    source_id = "ccp-" + os.path.splitext(os.path.basename(photo_path))[0]
    try:
        with open(photo_path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise image_io.RejectedInput("unreadable_file", str(err)) from None
    image = image_io.normalize_image(data)
    try:
        annotation = loadmat(annotation_path)
    except Exception as err:
        raise image_io.RejectedInput("bad_annotation", f"{type(err).__name__}: {err}") from None

    if kind == "pixel":
        if "groundtruth" not in annotation:
            raise image_io.RejectedInput("bad_annotation", "no 'groundtruth' variable")
        label_map = np.asarray(annotation["groundtruth"])
        if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
            raise image_io.RejectedInput("bad_annotation",
                                         f"groundtruth is {label_map.dtype} {label_map.shape}")
        if label_map.size and (label_map.min() < 0 or label_map.max() >= len(CCP_LABEL_MAP)):
            raise image_io.RejectedInput("bad_annotation", "label ids outside 0..58")
        label_map = label_map.astype(np.uint8)
        if not label_map.any():
            # A street photo always shows clothes: an all-background map is a missing annotation,
            # and a record claiming "no garments" would teach the detector the wrong thing.
            raise image_io.RejectedInput("empty_annotation", "label map is all background")
        if label_map.shape != (image.height, image.width):
            raise image_io.RejectedInput(
                "annotation_size_mismatch",
                f"label map {label_map.shape} vs image {(image.height, image.width)}")
        components = garment_components(label_map)
        objects = tuple(GarmentObject(cat, (x0 / image.width, y0 / image.height,
                                            x1 / image.width, y1 / image.height))
                        for cat, (x0, y0, x1, y1) in components)
        ids, counts = np.unique(label_map, return_counts=True)
        area = {}
        for ccp_id, count in zip(ids, counts):
            target = CCP_LABEL_MAP[int(ccp_id)][1]
            if target is not None:
                area[target] = area.get(target, 0) + int(count)
        main = choose_main_garment(area, label_map.size)
        order = sorted(area, key=lambda c: -area[c])
        attributes, caption = _attributes_and_caption(list(area), order)
        segmentation = image_io.encode_png(_SEGMENTATION_REMAP[label_map])
    elif kind == "image":
        if "tags" not in annotation:
            raise image_io.RejectedInput("bad_annotation", "no 'tags' variable")
        tags = [int(t) for t in np.asarray(annotation["tags"]).ravel()]
        unknown = [t for t in tags if t not in CCP_LABEL_MAP]
        if unknown:
            raise image_io.RejectedInput("bad_annotation", f"unknown tag ids {unknown}")
        present = sorted({CCP_LABEL_MAP[t][1] for t in tags} - {None})
        main = choose_main_garment({c: 1 for c in present})
        order = sorted(present, key=lambda c: (
            MAIN_GARMENT_PRIORITY.index(F.GARMENT_SUPER_CATEGORY[c])
            if c in F.GARMENT_SUPER_CATEGORY
            else 9, c))
        attributes, caption = _attributes_and_caption(present, order)
        objects, segmentation = (), None
    else:
        raise ValueError(kind)
    return FashionRecord(source_id=source_id, encoded=image.encoded, format=image.format,
                         height=image.height, width=image.width, objects=objects, category=main,
                         attributes=attributes, caption=caption, segmentation_png=segmentation)


def find_photos(source: str) -> Iterator[tuple[str, Optional[str], Optional[str]]]:
    """Yields ``(photo_path, annotation_path or None, kind or None)`` for every CCP photo."""
    photos = os.path.join(source, "photos")
    if not os.path.isdir(photos):
        raise FileNotFoundError(f"{source} has no photos/ folder: not a CCP data set")
    pixel = os.path.join(source, "annotations", "pixel-level")
    tagged = os.path.join(source, "annotations", "image-level")
    for name in sorted(os.listdir(photos)):
        stem = os.path.splitext(name)[0]
        path = os.path.join(photos, name)
        for folder, kind in ((pixel, "pixel"), (tagged, "image")):
            candidate = os.path.join(folder, stem + ".mat")
            if os.path.exists(candidate):
                yield path, candidate, kind
                break
        else:
            yield path, None, None


def convert(source: str, writer, progress=None, limit: Optional[int] = None) -> dict:
    """Converts a CCP folder into ``writer`` (a :class:`SpanWriter`); returns per-kind counts."""
    label_list = os.path.join(source, "label_list.mat")
    if os.path.exists(label_list):
        check_label_list(label_list)
    counts = {"pixel": 0, "image": 0, "pixel_with_boxes": 0}
    for n, (photo, annotation, kind) in enumerate(find_photos(source)):
        if limit is not None and n >= limit:
            break
        if progress:
            progress(n)
        if annotation is None:
            writer.reject(photo, "missing_annotation", "no pixel- or image-level .mat",
                          count_input=True)
            continue
        try:
            record = convert_photo(photo, annotation, kind)
        except image_io.RejectedInput as err:
            writer.reject(photo, err.reason, err.detail, count_input=True)
            continue
        except Exception as err:  # an unforeseen malformation must not stop the whole drop
            writer.reject(photo, "conversion_error", f"{type(err).__name__}: {err}",
                          count_input=True)
            continue
        writer.add(record)
        counts[kind] += 1
        if kind == "pixel" and record.objects:
            counts["pixel_with_boxes"] += 1
    return counts
