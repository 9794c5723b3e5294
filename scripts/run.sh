#!/usr/bin/env bash
# Quick-start command 1: set up (or reuse) the virtual environment and start the app on the
# shipped model (http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to change).
# With arguments it runs the command line instead: scripts/run.sh predict photo.jpg
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if [ $# -eq 0 ]; then
  exec python app.py
fi
exec python -m fusion_fer "$@"
