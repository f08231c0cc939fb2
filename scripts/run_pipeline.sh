#!/usr/bin/env bash
# The main job: the whole pipeline on the embedded synthetic catalog (default profile).
# Extra arguments go to `fashion run` (e.g. --profile smoke, --workspace DIR, --set k=v).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/bin/fashion run "$@"
