#!/usr/bin/env bash
# Serves the pushed category model with `fashion serve` and asks it about one eval image over
# gRPC, the way a client would. Usage: scripts/serve_check.sh [WORKSPACE]  (default: workspace)
# Output goes to stderr so that `scripts/run_pipeline.sh --json` keeps a clean stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
workspace="${1:-workspace}"
base="$(realpath "$workspace/serving/category")"
if ! compgen -G "$base/[0-9]*" >/dev/null; then
  echo "serve check: no pushed model under $base (the model was not blessed); skipped" >&2
  exit 0
fi
port="$(.venv/bin/python -c 'import portpicker; print(portpicker.pick_unused_port())')"
.venv/bin/fashion serve --model_name=category --model_base_path="$base" --port="$port" \
    --rest_api_port=0 2>"$workspace/serve.log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
echo "serve check: fashion serve (gRPC 127.0.0.1:$port) answering one eval image:" >&2
TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/fashion predict --server "127.0.0.1:$port" --model category --wait 180 --top-k 3 \
    --records "$workspace/catalog/span-*/eval/*" --limit 1 >&2
