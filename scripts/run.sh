#!/usr/bin/env bash
# Quick-start command 1: set up (or reuse) the virtual environment and start the app on the
# shipped model (http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change).
# With arguments it runs the command line instead: scripts/run.sh predict photo.jpg
# `scripts/run.sh web` builds the in-browser app (web/dist) and serves it on http://127.0.0.1:8000
# (WEB_PORT to change): the models run in the page, nothing is sent to this server but file requests.
if [ "${1:-}" = "web" ]; then
  export FUSION_FER_EXTRAS="requirements-dev.txt ${FUSION_FER_EXTRAS:-}"  # the build converts model.onnx with onnx
fi
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if [ $# -eq 0 ]; then
  exec python app.py
fi
if [ "$1" = "web" ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  python web/build.py --out web/dist
  echo "serving web/dist on http://127.0.0.1:${WEB_PORT:-8000}/ (Ctrl+C to stop)" >&2
  exec python -m http.server "${WEB_PORT:-8000}" --bind 127.0.0.1 --directory web/dist
fi
exec python -m fusion_fer "$@"
