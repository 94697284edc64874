#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules in scripts/mutation.py: slow, run by hand, never in CI.
# Writes docs/mutation.json and the score table in docs/testing.md.   Usage: scripts/mutation.sh [MODULE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import mutmut" 2>/dev/null; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
fi
exec nice -n 10 .venv/bin/python scripts/mutation.py "$@"
