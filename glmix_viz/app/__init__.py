"""The GLMix explorer, a Streamlit app shipped inside the package (``glmix-viz app``).

* :mod:`glmix_viz.app.main` - the page: sidebar (model, image, display settings), block slider, tabs.
* :mod:`glmix_viz.app.data` - models, images and network results, each computed once behind Streamlit's caches.
* :mod:`glmix_viz.app.views` - the pictures and tabs: library results in, Streamlit elements out.
* :mod:`glmix_viz.app.threads` - how many torch threads an interactive session uses.

Importing this package imports nothing else (the command line reads :data:`MAIN_SCRIPT` without loading Streamlit).
"""

from pathlib import Path

MAIN_SCRIPT = Path(__file__).resolve().with_name("main.py")

__all__ = ["MAIN_SCRIPT"]
