"""A generic catalog (image folder + CSV) → fashion records.

The CSV needs ``image_path`` (relative to the CSV's folder) and ``brand`` columns;
``category`` (a project garment category), ``attributes`` (``family:value`` items separated by
``;`` or ``|``) and ``caption`` are optional. Other columns, such as those of the brand study's
runway CSV (``collection_url``, ``image_url``, ``image_size`` ...), are ignored. Every row that
cannot be converted is rejected with a reason; nothing is dropped silently, and one bad row
never costs the good ones: a row with a NUL byte or a field of any length is rejected alone.

Image paths resolve under the CSV's folder; ``..`` or absolute paths leaving it are rejected
(``outside_catalog``) unless ``allow_outside``. Only regular files are read (a FIFO or a device
named in a row would block or never end), at most ``MAX_FILE_BYTES``, within ``read_timeout``
seconds (a hung network file system costs that row, not the run). The same image listed
twice, or reached again through a symlink, becomes one record; the others are rejected as
``duplicate_image`` (see ``SpanWriter.add_serialized``).
"""

from __future__ import annotations

import csv
import os
import re
import stat
import threading
from typing import Iterator, Optional

from components.catalog_import import images as image_io
from components.catalog_import.records import FashionRecord
from schemas import features as F

REQUIRED_COLUMNS = ("image_path", "brand")
OPTIONAL_COLUMNS = ("category", "attributes", "caption")
_ATTRIBUTE_SPLIT = re.compile(r"[;|]")
_ATTRIBUTES = frozenset(F.ATTRIBUTE_VOCABULARY)
MAX_FIELD = 10_000
# Seconds one image may take to open and read before its row is rejected as ``read_timeout``.
READ_TIMEOUT = 60.0
# Fields beyond Python's default 128 KiB limit are read (and then rejected as too long), not
# allowed to abort the whole file; beyond this the row is rejected by the csv module itself.
CSV_FIELD_LIMIT = 64 * 1024 * 1024
# Python 3.10's csv refuses NUL bytes with an error that stops the file; they are read as this
# character (never valid in a catalog), and the row holding one is rejected.
_NUL_MARK = "\ufffe"


class CatalogFormatError(ValueError):
    """The CSV as a whole is unusable (no header, missing required columns)."""


def _normalise_category(value: str) -> str:
    return value.strip().lower().replace("-", "_").replace(" ", "_")


def parse_row(row: dict, base_dir: str, allow_outside: bool = False) -> tuple[str, dict]:
    """Validates one CSV row; returns ``(image_path, labels)`` or raises RejectedInput."""
    if None in row or any(v is None for v in row.values()):
        raise image_io.RejectedInput("bad_csv_row", "wrong number of fields")
    if any(len(v) > MAX_FIELD for v in row.values()):
        raise image_io.RejectedInput("bad_csv_row", "field too long")
    if any(_NUL_MARK in v for v in row.values()):
        raise image_io.RejectedInput("bad_csv_row", "NUL byte in a field")
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
    full_path = os.path.normpath(os.path.join(base_dir, path))
    if not allow_outside:
        root = os.path.realpath(base_dir)
        if os.path.commonpath([root, os.path.realpath(full_path)]) != root:
            raise image_io.RejectedInput("outside_catalog", f"{path} leaves {base_dir} "
                                         "(use --allow-outside to read it)")
    caption = (row.get("caption") or "").strip() or None
    return full_path, {"brand": brand, "category": category,
                                         "attributes": tuple(dict.fromkeys(attributes)),
                                         "caption": caption}


def read_regular_file(path: str, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of ``path`` if it is a regular file (after symlinks);
    RejectedInput otherwise. Opened without blocking, so a FIFO cannot hang the converter."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise image_io.RejectedInput("missing_file", f"{path}: {err.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise image_io.RejectedInput("not_a_regular_file", path)
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            return handle.read(max_bytes + 1)
    except OSError as err:
        raise image_io.RejectedInput("missing_file", f"{path}: {err.strerror}") from None
    finally:
        os.close(descriptor)


def read_within(path: str, max_bytes: int, timeout: float) -> bytes:
    """:func:`read_regular_file` in a thread of its own; RejectedInput ``read_timeout`` when it
    has not finished within ``timeout`` seconds. A read stuck in a hung network file system
    cannot be interrupted: its thread (a daemon) is left behind and the conversion goes on."""
    outcome: dict = {}
    finished = threading.Event()

    def read():
        try:
            outcome["data"] = read_regular_file(path, max_bytes)
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err
        finally:
            finished.set()

    threading.Thread(target=read, name=f"read {path}", daemon=True).start()
    if not finished.wait(timeout):
        raise image_io.RejectedInput("read_timeout", f"{path}: not read within {timeout:g} s "
                                     "(a hung network file system?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["data"]


def _lines(handle) -> Iterator[str]:
    for line in handle:
        yield line.replace("\0", _NUL_MARK) if "\0" in line else line


def convert(csv_path: str, writer, progress=None, limit: Optional[int] = None,
            allow_outside: bool = False, read_timeout: float = READ_TIMEOUT) -> int:
    """Converts every row of ``csv_path`` into ``writer``; returns the number written.
    ``allow_outside`` lets ``image_path`` leave the CSV's folder; an image not read within
    ``read_timeout`` seconds rejects its row."""
    base_dir = os.path.dirname(os.path.abspath(csv_path))
    written = 0
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(_lines(handle))
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise CatalogFormatError(
                f"{csv_path}: missing required column(s) {missing}; found {columns}")
        reader.fieldnames = columns
        n = 0
        while limit is None or n < limit:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:  # this row only; the reader goes on with the next line
                writer.reject(f"{csv_path}:{reader.line_num}", "bad_csv_row", str(err),
                              count_input=True)
                n += 1
                continue
            if progress:
                progress(n)
            n += 1
            line = f"{csv_path}:{reader.line_num}"
            try:
                image_path, labels = parse_row(row, base_dir, allow_outside)
                data = read_within(image_path, image_io.MAX_FILE_BYTES, read_timeout)
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
