#!/usr/bin/env bash
# Creates (or refreshes) .venv at the repo root with Python 3.10 and the locked dependencies.
# Idempotent: does nothing when .venv already matches requirements.lock and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.10 "$HOME"/.pyenv/versions/3.10*/bin/python3.10 \
                   /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

stamp=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.bootstrap-stamp 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
python=$(find_python) || { echo "bootstrap: Python 3.10 not found (TFX 1.16 needs 3.9-3.10); set PYTHON=/path/to/python3.10" >&2; exit 1; }
echo "bootstrap: creating .venv with $python (first run takes a few minutes; pip's output goes to .venv/bootstrap.log)" >&2
[ -x .venv/bin/python ] || "$python" -m venv .venv
log=.venv/bootstrap.log
install() {
  if ! .venv/bin/python -m pip install --quiet "$@" >>"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" | tail -40 >&2
    echo "bootstrap: pip install $* failed; the whole output is in $log" >&2
    exit 1
  fi
}
: > "$log"
install --upgrade "pip<27" "setuptools>=77" wheel
install -r requirements.lock
install --no-deps --no-build-isolation -e .
echo "$stamp" > .venv/.bootstrap-stamp
echo "bootstrap: .venv ready" >&2
