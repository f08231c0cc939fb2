#!/usr/bin/env bash
# The main job: the whole pipeline on the embedded synthetic catalog (default profile), then the
# pushed model served by `fashion serve` answering one request.
# Extra arguments go to `fashion run` (e.g. --profile smoke, --workspace DIR, --set k=v).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
workspace=workspace
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --workspace=*) workspace="${args[$i]#--workspace=}" ;;
    --workspace) workspace="${args[$((i + 1))]}" ;;
  esac
done
.venv/bin/fashion run "$@"
scripts/serve_check.sh "$workspace"
