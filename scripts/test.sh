#!/usr/bin/env bash
# Quick-start command 2: set up (or reuse) the virtual environment and run the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k landmarks`.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python -m pytest "$@"
