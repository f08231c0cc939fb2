"""A generic catalog (image folder + CSV) → fashion records.

The CSV needs ``image_path`` (relative to the CSV's folder, or absolute) and ``brand`` columns;
``category`` (a project garment category), ``attributes`` (``family:value`` items separated by
``;`` or ``|``) and ``caption`` are optional. Other columns, such as those of the brand study's
runway CSV (``collection_url``, ``image_url``, ``image_size`` ...), are ignored. Every row that
cannot be converted is rejected with a reason; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import os
import re
from typing import Optional

from components.catalog_import import images as image_io
from components.catalog_import.records import FashionRecord
from schemas import features as F

REQUIRED_COLUMNS = ("image_path", "brand")
OPTIONAL_COLUMNS = ("category", "attributes", "caption")
_ATTRIBUTE_SPLIT = re.compile(r"[;|]")
_ATTRIBUTES = frozenset(F.ATTRIBUTE_VOCABULARY)
MAX_FIELD = 10_000


class CatalogFormatError(ValueError):
    """The CSV as a whole is unusable (no header, missing required columns)."""


def _normalise_category(value: str) -> str:
    return value.strip().lower().replace("-", "_").replace(" ", "_")


def parse_row(row: dict, base_dir: str) -> tuple[str, dict]:
    """Validates one CSV row; returns ``(image_path, labels)`` or raises RejectedInput."""
    if None in row or any(v is None for v in row.values()):
        raise image_io.RejectedInput("bad_csv_row", "wrong number of fields")
    if any(len(v) > MAX_FIELD for v in row.values()):
        raise image_io.RejectedInput("bad_csv_row", "field too long")
    path = row["image_path"].strip()
    if not path:
        raise image_io.RejectedInput("bad_csv_row", "empty image_path")
    brand = row["brand"].strip()
    if not brand:
        raise image_io.RejectedInput("bad_csv_row", "empty brand")
    category = _normalise_category(row.get("category") or "") or None
    if category is not None and category not in F.GARMENT_SUPER_CATEGORY:
        raise image_io.RejectedInput("unknown_category", category)
    raw_attributes = _ATTRIBUTE_SPLIT.split(row.get("attributes") or "")
    attributes = tuple(a.strip().lower() for a in raw_attributes if a.strip())
    unknown = [a for a in attributes if a not in _ATTRIBUTES]
    if unknown:
        raise image_io.RejectedInput("unknown_attribute", ", ".join(unknown))
    full_path = path if os.path.isabs(path) else os.path.join(base_dir, path)
    caption = (row.get("caption") or "").strip() or None
    return os.path.normpath(full_path), {"brand": brand, "category": category,
                                         "attributes": tuple(dict.fromkeys(attributes)),
                                         "caption": caption}


def convert(csv_path: str, writer, progress=None, limit: Optional[int] = None) -> int:
    """Converts every row of ``csv_path`` into ``writer``; returns the number written."""
    base_dir = os.path.dirname(os.path.abspath(csv_path))
    written = 0
    with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise CatalogFormatError(
                f"{csv_path}: missing required column(s) {missing}; found {columns}")
        reader.fieldnames = columns
        for n, row in enumerate(reader):
            if limit is not None and n >= limit:
                break
            if progress:
                progress(n)
            line = f"{csv_path}:{reader.line_num}"
            try:
                image_path, labels = parse_row(row, base_dir)
                try:
                    with open(image_path, "rb") as image_file:
                        data = image_file.read(image_io.MAX_FILE_BYTES + 1)
                except OSError as err:
                    raise image_io.RejectedInput("missing_file", f"{image_path}: {err.strerror}")
                image = image_io.normalize_image(data)
            except image_io.RejectedInput as err:
                writer.reject(line, err.reason, err.detail, count_input=True)
                continue
            source_id = "catalog-" + os.path.relpath(image_path, base_dir)
            record = FashionRecord(source_id=source_id, encoded=image.encoded, format=image.format,
                                   height=image.height, width=image.width,
                                   category=labels["category"], attributes=labels["attributes"],
                                   brand=labels["brand"], caption=labels["caption"])
            if writer.add(record):
                written += 1
    return written
