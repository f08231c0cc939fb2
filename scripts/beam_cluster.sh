#!/usr/bin/env bash
# Starts, stops or shows a local Beam cluster (a job service and an SDK worker pool, each its
# own process; pipeline/beam_cluster.py) for the pipeline's Beam components, as CI scripts do:
#
#   scripts/beam_cluster.sh start [STATE_DIR] [WORKERS]   # prints the --set flags to run on it
#   .venv/bin/fashion run --set beam.runner=PortableRunner --set beam.job_endpoint=... ...
#   scripts/beam_cluster.sh stop [STATE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
command="${1:-}"
state="${2:-workspace/beam-cluster}"
case "$command" in
  start)
    scripts/bootstrap.sh
    exec .venv/bin/python -m pipeline.beam_cluster start --state "$state" --workers "${3:-2}" ;;
  stop|status)
    exec .venv/bin/python -m pipeline.beam_cluster "$command" --state "$state" ;;
  *)
    echo "usage: $0 start|stop|status [STATE_DIR] [WORKERS]" >&2; exit 2 ;;
esac
