#!/usr/bin/env python
"""The serve check's client (``scripts/serve_check.sh`` starts the server): asks every model of
a ModelServerConfig about one eval image over gRPC, the way ``fashion predict`` does, or, for a
model whose version carries a catalog index, a text search over REST (``fashion search``). One
process for every model: each ``fashion`` command in a process of its own paid TensorFlow's
import again (the check took 70 s for six models, most of it imports).

Usage: serve_check.py CONFIG GRPC_PORT REST_PORT RECORDS_GLOB
"""

from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def main(argv) -> int:
    config, grpc_port, rest_port, records = argv
    import fashion_cli
    fashion_cli.quiet_known_warnings()
    from schemas import catalog_index
    from schemas.serving_api import latest_version
    from serving.config_files import read_model_config
    failed = 0
    for spec in read_model_config(config):
        name = spec.name
        if os.path.isdir(catalog_index.index_dir(latest_version(spec.base_path))):
            print(f"serve check: fashion serve (REST 127.0.0.1:{rest_port}), model {name}, a "
                  "text search:", flush=True)
            command = ["search", "--server", f"127.0.0.1:{rest_port}", "--model", name,
                       "--wait", "180", "--text", "a person wearing a red dress", "-k", "3"]
        else:
            print(f"serve check: fashion serve (gRPC 127.0.0.1:{grpc_port}), model {name}, one "
                  "eval image:", flush=True)
            command = ["predict", "--server", f"127.0.0.1:{grpc_port}", "--model", name,
                       "--wait", "180", "--top-k", "3", "--records", records, "--limit", "1"]
        code = fashion_cli.main(command)
        sys.stdout.flush()
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
