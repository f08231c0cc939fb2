"""Span directories: the unit in which catalog drops arrive.

A catalog root holds ``span-N/`` folders, each with sharded TFRecords per split
(``span-N/train/part-00000-of-00004.tfrecord``), a ``rejects.csv`` listing every input that
could not be converted and why, and a ``summary.json``. ImportExampleGen reads the latest span
through the pattern ``span-{SPAN}/<split>/*``. A span is written into a hidden temporary folder
and renamed into place when complete, so a half-written span is never picked up.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from typing import Iterable, Optional

SPAN_PATTERN = re.compile(r"^span-(\d+)$")
SPLITS = ("train", "eval")
REJECTS_FILE = "rejects.csv"
SUMMARY_FILE = "summary.json"


def split_input_pattern(split: str) -> str:
    """The ImportExampleGen file pattern of ``split`` relative to the catalog root."""
    return f"span-{{SPAN}}/{split}/*"


def existing_spans(root: str) -> list[int]:
    """Span numbers present under ``root`` (complete spans only), sorted."""
    if not os.path.isdir(root):
        return []
    return sorted(int(m.group(1)) for name in os.listdir(root)
                  if (m := SPAN_PATTERN.match(name)))


def next_span(root: str) -> int:
    spans = existing_spans(root)
    return spans[-1] + 1 if spans else 1


def assign_split(source_id: str, eval_fraction: float) -> str:
    """Deterministic split by hash of the source id, stable across reruns and machines."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return "eval" if bucket < eval_fraction else "train"


@dataclasses.dataclass
class ConversionSummary:
    """Counts a conversion reports; ``to_json`` is what ``--json`` prints."""

    span: int
    span_dir: str
    written: dict
    rejected: int
    reject_reasons: dict
    inputs: int
    seconds: float
    with_boxes: int = 0

    @property
    def images_per_second(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["images_per_second"] = round(self.images_per_second, 2)
        data["seconds"] = round(self.seconds, 3)
        return data


class SpanWriter:
    """Writes one span: sharded records per split plus a rejects report.

    Use as a context manager; on a clean exit the span is renamed into place, on an exception
    the temporary folder is removed and nothing becomes visible.
    """

    def __init__(self, root: str, span: Optional[int] = None, num_shards: int = 4,
                 eval_fraction: float = 0.2):
        if not 0.0 <= eval_fraction < 1.0:
            raise ValueError("eval_fraction must be in [0, 1)")
        if num_shards < 1:
            raise ValueError("num_shards must be >= 1")
        self.root = os.path.abspath(root)
        self.span = span if span is not None else next_span(self.root)
        if self.span in existing_spans(self.root):
            raise FileExistsError(f"span-{self.span} already exists under {self.root}")
        self.num_shards = num_shards
        self.eval_fraction = eval_fraction
        self.span_dir = os.path.join(self.root, f"span-{self.span}")
        self._tmp_dir = os.path.join(self.root, f".span-{self.span}.tmp-{os.getpid()}")
        self._writers = {}
        self._counts = {split: 0 for split in SPLITS}
        self._with_boxes = 0
        self._rejects: list[tuple[str, str, str]] = []
        self._seen_ids: set[str] = set()
        self._seen_images: dict[bytes, str] = {}
        self._inputs = 0
        self._start = time.monotonic()

    def __enter__(self):
        import tensorflow as tf
        if os.path.exists(self._tmp_dir):
            shutil.rmtree(self._tmp_dir)
        for split in SPLITS:
            os.makedirs(os.path.join(self._tmp_dir, split))
            self._writers[split] = [
                tf.io.TFRecordWriter(os.path.join(
                    self._tmp_dir, split, f"part-{i:05d}-of-{self.num_shards:05d}.tfrecord"))
                for i in range(self.num_shards)]
        self._start = time.monotonic()
        return self

    def add(self, record) -> str:
        """Writes a :class:`~components.catalog_import.records.FashionRecord`; returns its split."""
        from components.catalog_import.records import to_example
        return self.add_serialized(record.source_id, to_example(record).SerializeToString(),
                                   bool(record.objects), record.encoded)

    def add_serialized(self, source_id: str, serialized: bytes, has_boxes: bool,
                       image: Optional[bytes] = None) -> str:
        """Writes a serialized example; returns its split ("" for a rejected duplicate).

        A record whose ``image`` bytes were already written under another id (the same file
        listed twice, a symlink to a listed file) is rejected as ``duplicate_image``, naming
        the first: the same photo must not land in both train and eval."""
        self._inputs += 1
        if source_id in self._seen_ids:
            self.reject(source_id, "duplicate_source_id")
            return ""
        if image is not None:
            digest = hashlib.sha256(image).digest()
            first = self._seen_images.get(digest)
            if first is not None:
                self.reject(source_id, "duplicate_image", f"same image as {first}")
                return ""
            self._seen_images[digest] = source_id
        self._seen_ids.add(source_id)
        split = assign_split(source_id, self.eval_fraction)
        shard = int(hashlib.md5(source_id.encode()).hexdigest(), 16) % self.num_shards
        self._writers[split][shard].write(serialized)
        self._counts[split] += 1
        self._with_boxes += has_boxes
        return split

    def reject(self, source: str, reason: str, detail: str = "", count_input: bool = False):
        """Records an input that was not converted. ``count_input`` for inputs not yet counted."""
        if count_input:
            self._inputs += 1
        self._rejects.append((source, reason, detail[:500]))

    def __exit__(self, exc_type, exc, tb):
        for writers in self._writers.values():
            for writer in writers:
                writer.close()
        if exc_type is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            return False
        with open(os.path.join(self._tmp_dir, REJECTS_FILE), "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["source", "reason", "detail"])
            out.writerows(self._rejects)
        self.summary = self._summary()
        with open(os.path.join(self._tmp_dir, SUMMARY_FILE), "w") as handle:
            json.dump(self.summary.to_json(), handle, indent=2)
        os.rename(self._tmp_dir, self.span_dir)
        return False

    def _summary(self) -> ConversionSummary:
        reasons: dict[str, int] = {}
        for _, reason, _ in self._rejects:
            reasons[reason] = reasons.get(reason, 0) + 1
        return ConversionSummary(
            span=self.span, span_dir=self.span_dir, written=dict(self._counts),
            rejected=len(self._rejects), reject_reasons=reasons, inputs=self._inputs,
            seconds=time.monotonic() - self._start, with_boxes=self._with_boxes)


def read_rejects(span_dir: str) -> list[dict]:
    """Reads a span's rejects report as a list of dicts (source, reason, detail)."""
    with open(os.path.join(span_dir, REJECTS_FILE), newline="") as handle:
        return list(csv.DictReader(handle))


def iter_span_files(root: str, span: int, split: str) -> Iterable[str]:
    folder = os.path.join(root, f"span-{span}", split)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder))
