#!/usr/bin/env bash
# Serves every pushed model (workspace/serving/models.config) with `fashion serve` and asks each
# about one eval image over gRPC, the way a client would.
# Usage: scripts/serve_check.sh [WORKSPACE]  (default: workspace)
# Output goes to stderr so that `scripts/run_pipeline.sh --json` keeps a clean stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
workspace="${1:-workspace}"
config="$(realpath "$workspace")/serving/models.config"
if [[ ! -f "$config" ]]; then
  echo "serve check: no pushed model (nothing was blessed); skipped" >&2
  exit 0
fi
port="$(.venv/bin/python -c 'import portpicker; print(portpicker.pick_unused_port())')"
.venv/bin/fashion serve --model_config_file="$config" --port="$port" --rest_api_port=0 \
    2>"$workspace/serve.log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for model in $(grep -o 'name: "[a-z_]*"' "$config" | cut -d'"' -f2); do
  echo "serve check: fashion serve (gRPC 127.0.0.1:$port), model $model, one eval image:" >&2
  TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/fashion predict --server "127.0.0.1:$port" --model "$model" \
      --wait 180 --top-k 3 --records "$workspace/catalog/span-*/eval/*" --limit 1 >&2
done
