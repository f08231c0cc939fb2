#!/bin/bash
# One timed GPU session on a machine that has JAX but neither TensorFlow nor Keras: installs the
# Keras wheels carried in .whl/, runs the accelerator training check, then the builder benchmark,
# and writes JSON lines and logs under $OUT (default ./gpu-out).
# Wheels (on a machine with pip access, for the GPU machine's Python, e.g. 3.12):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl keras==3.12.4 namex optree
# Usage: scripts/gpu_session.sh [SECONDS_BUDGET (default 530)] [CHECK_FAMILIES] [BENCH_ARGS...]
set -u
budget=${1:-530}
check_families=${2:-}  # empty: every registered family
shift $(( $# > 2 ? 2 : $# ))
out=${OUT:-gpu-out}
mkdir -p "$out"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
nvidia-smi -L || true
if ! python3 -c "import keras" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
echo "== accelerator training check (t=$(elapsed)s)"
timeout $(( budget / 3 )) python3 scripts/check_accelerator_training.py --mixed-precision \
  --data-parallel --families "$check_families" --json-out "$out/check.jsonl" 2>&1 \
  | grep -v -i "warning" | tee "$out/check.log"
echo "check rc=${PIPESTATUS[0]}"
echo "== builder benchmark (t=$(elapsed)s)"
left=$(( budget - $(elapsed) ))
timeout $left python3 scripts/benchmark_builders.py --precisions float32,mixed_float16 \
  --augmentation --deadline-s $(( left - 60 )) --json-out "$out/bench.jsonl" "$@" 2>&1 \
  | grep -v -i "warning" | tee "$out/bench.log"
echo "bench rc=${PIPESTATUS[0]} (t=$(elapsed)s)"
