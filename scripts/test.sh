#!/usr/bin/env bash
# Quick-start command 2: set up (or reuse) the virtual environment with the test requirements
# (requirements-dev.txt: the app's, plus pytest, playwright and the research package's) and run the tests.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k landmarks`.
export FUSION_FER_EXTRAS="requirements-dev.txt ${FUSION_FER_EXTRAS:-}"
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python -m pytest "$@"
