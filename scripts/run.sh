#!/usr/bin/env bash
# Quick-start command 1: set up (or reuse) the virtual environment and run fusion_fer.
# With no arguments it runs the face and landmark pipeline on a sample photo that ships with
# matplotlib; the Gradio app will take this place once it exists.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
if [ $# -eq 0 ]; then
  exec python -m fusion_fer detect --sample
fi
exec python -m fusion_fer "$@"
