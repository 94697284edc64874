#!/usr/bin/env bash
# Set up (if needed, with chromium for the end-to-end test) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --with-browser
exec .venv/bin/python -m pytest -q "$@"
