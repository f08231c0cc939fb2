#!/usr/bin/env bash
# Serves every pushed model (workspace/serving/models.config) with `fashion serve` and asks each
# about one eval image over gRPC, the way a client would; a model with a catalog index (the dual
# encoder) is asked a text search over REST instead.
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
rest_port="$(.venv/bin/python -c 'import portpicker; print(portpicker.pick_unused_port())')"
.venv/bin/fashion serve --model_config_file="$config" --port="$port" \
    --rest_api_port="$rest_port" 2>"$workspace/serve.log" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for model in $(grep -o 'name: "[a-z_]*"' "$config" | cut -d'"' -f2); do
  folder="$(dirname "$config")/$model"
  latest="$(ls "$folder" | grep -E '^[0-9]+$' | sort -n | tail -1)"
  if [[ -d "$folder/$latest/assets.extra/catalog_index" ]]; then
    echo "serve check: fashion serve (REST 127.0.0.1:$rest_port), model $model, a text search:" >&2
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/fashion search --server "127.0.0.1:$rest_port" \
        --model "$model" --wait 180 --text "a person wearing a red dress" -k 3 >&2
    continue
  fi
  echo "serve check: fashion serve (gRPC 127.0.0.1:$port), model $model, one eval image:" >&2
  TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/fashion predict --server "127.0.0.1:$port" --model "$model" \
      --wait 180 --top-k 3 --records "$workspace/catalog/span-*/eval/*" --limit 1 >&2
done
