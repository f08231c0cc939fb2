#!/usr/bin/env bash
# Wall time of a warm-started retraining against the first run (a measurement, not a test).
#
#   scripts/measure_warm_retraining.sh [--profile default] [--workspace DIR]
#
# 1. The first run: every family trained from its pretrained trunk on the embedded span 1.
# 2. A second span like the first (the same generator, another seed: no drift).
# 3. The retraining on it: category, attributes and brand warm-started from their latest blessed
#    models (the families whose specs declare warm_start), the others as in the first run.
# 4. Then, for comparison, the same retraining cold on a third such span.
# Each run's `fashion run --json` summary is kept in the workspace (first.json, warm.json,
# cold.json); the last lines print wall seconds and each trainer's seconds side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=default
workspace=workspace-warm
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --workspace) workspace="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile P] [--workspace DIR]" >&2; exit 2 ;;
  esac
done
scripts/bootstrap.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
fashion=.venv/bin/fashion
mkdir -p "$workspace"
images=$(.venv/bin/python -c "import pipeline_config as pc; c = pc.get_config('$profile'); \
print(c.data.synthetic_images, c.data.synthetic_image_size)")
read -r num_images image_size <<< "$images"
warm=()
for family in $(.venv/bin/python -c "from trainer.families import registry; \
print(' '.join(s.name for s in registry.family_specs() if s.warm_start))"); do
  warm+=(--set "$family.warm_start=true")
done

timed_run() {  # NAME ARGS...: runs the pipeline, keeps its summary, records its wall seconds
  local name="$1"; shift
  local start; start=$(date +%s)
  "$fashion" run --profile "$profile" --workspace "$workspace" --json "$@" \
    > "$workspace/$name.json"
  echo $(( $(date +%s) - start )) > "$workspace/$name.seconds"
}

timed_run first
"$fashion" generate --output "$workspace/catalog" --num-images "$num_images" --seed 8 \
  --image-size "$image_size" > /dev/null
timed_run warm "${warm[@]}"
"$fashion" generate --output "$workspace/catalog" --num-images "$num_images" --seed 9 \
  --image-size "$image_size" > /dev/null
timed_run cold

.venv/bin/python - "$workspace" <<'EOF'
import json, os, sys
workspace = sys.argv[1]
runs = {}
for name in ("first", "warm", "cold"):
    summary = json.load(open(os.path.join(workspace, f"{name}.json")))
    seconds = int(open(os.path.join(workspace, f"{name}.seconds")).read())
    runs[name] = {"wall_s": seconds,
                  "trainers_s": {k: v for k, v in summary["component_seconds"].items()
                                 if k.endswith("Trainer")},
                  "blessed": {k: (v or {}).get("blessed")
                              for k, v in summary["evaluation"].items()},
                  "metrics": {k: (v or {}).get("slices", {}).get("overall", {})
                              for k, v in summary["evaluation"].items()}}
for name, run in runs.items():
    print(f"{name}: {run['wall_s']} s wall; trainers {run['trainers_s']}; "
          f"blessed {run['blessed']}")
print(json.dumps(runs))
EOF
