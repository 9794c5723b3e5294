# Shared by the quick-start scripts: create or reuse .venv in the repo and install requirements.
# Sourced, not run. Installs a requirements file again only when it changed since it was last installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.14 python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] < (3,10))' 2>/dev/null; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "error: fusion_fer needs Python 3.10 or newer." >&2
  exit 1
fi
VENV="${FUSION_FER_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV with $PY" >&2
  "$PY" -m venv "$VENV"
fi
# FUSION_FER_EXTRAS: more requirement files to install too, e.g. "requirements-ray.txt" (CI sets it;
# scripts/test.sh adds requirements-dev.txt). A file is installed again only when its contents change,
# so the app's and the tests' scripts can share one environment.
FILES=("$ROOT/requirements.txt")
for extra in ${FUSION_FER_EXTRAS:-}; do FILES+=("$ROOT/$extra"); done
STAMP="$VENV/.requirements.sha256"
MISSING=0
for f in "${FILES[@]}"; do
  grep -qxF "$(sha256sum "$f" | cut -d' ' -f1) $(basename "$f")" "$STAMP" 2>/dev/null || MISSING=1
done
if [ "$MISSING" = 1 ]; then
  echo "installing requirements into $VENV (first run takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  REQS=()
  for f in "${FILES[@]}"; do REQS+=(-r "$f"); done
  "$VENV/bin/python" -m pip install --quiet "${REQS[@]}"
  for f in "${FILES[@]}"; do echo "$(sha256sum "$f" | cut -d' ' -f1) $(basename "$f")" >> "$STAMP"; done
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
