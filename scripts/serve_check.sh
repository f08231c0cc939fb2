#!/usr/bin/env bash
# Serves every pushed model (workspace/serving/models.config) with `fashion serve` and asks each
# about one eval image over gRPC, the way a client would; a model with a catalog index (the dual
# encoder) is asked a text search over REST instead (scripts/serve_check.py, one process).
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
TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python scripts/serve_check.py "$config" "$port" "$rest_port" \
    "$workspace/catalog/span-*/eval/*" >&2
