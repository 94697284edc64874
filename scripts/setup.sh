#!/usr/bin/env bash
# Set up glmix-viz from nothing: a virtual environment in .venv with pinned torch/torchvision/timm (constraints.txt)
# and the package in editable mode with its test extras. Idempotent: a second run only checks.
# Usage: scripts/setup.sh [--with-browser]   (--with-browser also installs Debian's chromium for the end-to-end test,
# which Playwright drives as /usr/bin/chromium: `playwright install` is never needed and never run)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [[ "${1:-}" == "--with-browser" ]] && ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        echo "setup: installing chromium (Debian) for the end-to-end app test"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "setup: warning: chromium could not be installed; the end-to-end test will be skipped"
    else
        echo "setup: warning: chromium missing and apt-get unavailable; the end-to-end test will be skipped"
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.glmix-viz-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || constraints.txt -nt $stamp ]]; then
    echo "setup: installing pinned dependencies (about a minute; pydensecrf2 builds from source)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
    touch "$stamp"
fi
.venv/bin/python -c "import torch, timm, pydensecrf.densecrf, glmix_viz; print('setup: ok, torch', torch.__version__, 'timm', timm.__version__)"
