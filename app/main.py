"""GLMix explorer from a checkout: ``streamlit run app/main.py [-- --checkpoints DIR]``.

The app lives in the package (:mod:`glmix_viz.app`, also started by ``glmix-viz app``); this file only makes the
checkout's ``glmix_viz`` importable when it is not installed, then draws the page.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from glmix_viz.app.main import main  # noqa: E402

main()
