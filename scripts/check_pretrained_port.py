#!/usr/bin/env python
"""Port check of the shipped ImageNet EfficientNet-Lite0 (not a test): the share of CCP photos
whose top-5 ImageNet classes include a clothing class, and the top classes it sees most.

Usage:
    python scripts/check_pretrained_port.py [--ccp ../shared/datasets/ccp] [--limit 0]

A faithful port sees garments in street-fashion photos; a wrong layout (transposed kernels,
another padding, other input scaling) gives scattered, unrelated classes.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trainer.backbones.imagenet import CLOTHING_CLASSES  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "datasets", "ccp"))
    parser.add_argument("--limit", type=int, default=0, help="photos to check (0: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    from PIL import Image

    from trainer import weights
    from trainer.backbones import efficientnet_lite
    photos = sorted(glob.glob(os.path.join(args.ccp, "photos", "*.jpg")))
    if args.limit:
        photos = photos[:args.limit]
    if not photos:
        print(f"no photos under {args.ccp}/photos", file=sys.stderr)
        return 2
    model = efficientnet_lite.efficientnet_lite("lite0")
    efficientnet_lite.load_preset(model, weights.PRESETS["efficientnet-lite0-imagenet"].path())
    hits, top1 = 0, collections.Counter()
    for start in range(0, len(photos), args.batch_size):
        batch = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224)),
                                     np.float32) for p in photos[start:start + args.batch_size]])
        top5 = np.argsort(-np.asarray(model.predict(batch, verbose=0)), axis=1)[:, :5]
        hits += sum(bool(set(row.tolist()) & set(CLOTHING_CLASSES)) for row in top5)
        top1.update(CLOTHING_CLASSES.get(int(row[0]), f"class {int(row[0])}") for row in top5)
    print(json.dumps({"photos": len(photos), "clothing_in_top5": hits,
                      "share": round(hits / len(photos), 4),
                      "most_common_top1": top1.most_common(8)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
