#!/usr/bin/env bash
# Set up (if needed) and open the glmix-viz explorer on the bundled demo model: http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/streamlit run app/main.py --browser.gatherUsageStats false "$@"
