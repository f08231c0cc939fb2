"""What a catalog span's images look like: the per-image facts drift checks compare.

For each record: its size (resolution, aspect ratio), brightness and contrast (mean and standard
deviation of the luminance), the SHA-256 of its encoded bytes (exact duplicates), a perceptual
hash (near-duplicates: re-encoded, resized or slightly edited copies; ``imagehash``'s pHash, 64
bits) and, for a seeded sample, an embedding from a pretrained trunk (how far the content moved
between spans). Pure functions over records; the component reads the span's TFRecords.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import Callable, Iterable, Optional

import numpy as np

# Per-image columns of a profile, and the dtype each is stored with.
COLUMNS = {"source_id": object, "sha256": "S64", "phash": np.uint64, "height": np.int32,
           "width": np.int32, "brightness": np.float32, "contrast": np.float32}
# Side of the grayscale thumbnail brightness and contrast are measured on.
THUMBNAIL = 64


@dataclasses.dataclass
class SpanProfile:
    """The profile of one span: per-image columns, embeddings of a sample, and the span's
    conversion counts (``inputs``, ``rejected`` by reason) when known."""

    span: int
    columns: dict
    embeddings: Optional[np.ndarray] = None  # [sample, dim] float32
    embedded_rows: Optional[np.ndarray] = None  # which rows were embedded
    conversion: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["sha256"])

    def save(self, path: str) -> None:
        """Writes the profile as one ``.npz`` file (``tf.io.gfile``: local or remote)."""
        import json

        import tensorflow as tf
        buffer = io.BytesIO()
        arrays = {f"column_{name}": (np.asarray(values).astype(str) if name == "source_id"
                                     else np.asarray(values, COLUMNS[name]))
                  for name, values in self.columns.items()}
        if self.embeddings is not None:
            arrays["embeddings"] = self.embeddings.astype(np.float32)
            arrays["embedded_rows"] = self.embedded_rows.astype(np.int64)
        np.savez_compressed(buffer, span=np.int64(self.span),
                            conversion=np.array(json.dumps(self.conversion)), **arrays)
        with tf.io.gfile.GFile(path, "wb") as handle:
            handle.write(buffer.getvalue())

    @classmethod
    def load(cls, path: str) -> "SpanProfile":
        """Reads a profile written by :meth:`save`."""
        import json

        import tensorflow as tf
        with tf.io.gfile.GFile(path, "rb") as handle:
            data = np.load(io.BytesIO(handle.read()), allow_pickle=False)
            columns = {name[len("column_"):]: data[name] for name in data.files
                       if name.startswith("column_")}
            return cls(span=int(data["span"]), columns=columns,
                       embeddings=data["embeddings"] if "embeddings" in data.files else None,
                       embedded_rows=(data["embedded_rows"] if "embedded_rows" in data.files
                                      else None),
                       conversion=json.loads(str(data["conversion"])))


def image_facts(encoded: bytes) -> dict:
    """Size, brightness, contrast, SHA-256 and perceptual hash of one encoded image."""
    import imagehash
    from PIL import Image
    image = Image.open(io.BytesIO(encoded))
    width, height = image.size
    image.draft("L", (THUMBNAIL * 2, THUMBNAIL * 2))  # JPEG: decode at a reduced scale
    gray = image.convert("L")
    phash = imagehash.phash(gray)
    thumbnail = np.asarray(gray.resize((THUMBNAIL, THUMBNAIL)), np.float32)
    return {"sha256": hashlib.sha256(encoded).hexdigest().encode(),
            "phash": np.uint64(int(str(phash), 16)), "height": height, "width": width,
            "brightness": float(thumbnail.mean()), "contrast": float(thumbnail.std())}


def profile_span(span: int, records: Iterable[tuple], embed: Optional[Callable] = None,
                 max_embedded: int = 512, seed: int = 0,
                 conversion: Optional[dict] = None) -> SpanProfile:
    """Profiles ``records`` (``(source_id, encoded bytes)`` pairs) of span ``span``.

    ``embed`` maps a list of encoded images to an ``[n, dim]`` array; it is given a seeded
    sample of at most ``max_embedded`` images (None: no embeddings). Only that sample is held
    in memory (a reservoir), however large the span."""
    columns = {name: [] for name in COLUMNS}
    rng = np.random.default_rng(seed)
    reservoir = []  # (row, encoded): a uniform sample of the rows seen so far
    for row, (source_id, encoded) in enumerate(records):
        facts = image_facts(encoded)
        columns["source_id"].append(source_id)
        for name, value in facts.items():
            columns[name].append(value)
        if embed is None or max_embedded < 1:
            continue
        if len(reservoir) < max_embedded:
            reservoir.append((row, encoded))
        else:
            slot = int(rng.integers(0, row + 1))
            if slot < max_embedded:
                reservoir[slot] = (row, encoded)
    columns = {name: np.asarray(values, dtype=COLUMNS[name]) for name, values in columns.items()}
    embeddings = rows = None
    if reservoir:
        reservoir.sort(key=lambda item: item[0])
        rows = np.asarray([row for row, _ in reservoir])
        embeddings = np.asarray(embed([encoded for _, encoded in reservoir]), np.float32)
    return SpanProfile(span=span, columns=columns, embeddings=embeddings, embedded_rows=rows,
                       conversion=dict(conversion or {}))
