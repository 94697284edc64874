"""The GLMix explorer, a Streamlit app shipped inside the package (``glmix-viz app``).

* :mod:`glmix_viz.app.main` - the pages (explorer, runs, atlas: ``st.navigation``): sidebar, header, block slider,
  the tabs of the views, the link kept current, "Copy link".
* :mod:`glmix_viz.app.sidebar` - where the model and the image come from, resolution, display settings.
* :mod:`glmix_viz.app.data` - models, images and network results, each computed once behind Streamlit's caches.
* :mod:`glmix_viz.app.page` - :class:`~glmix_viz.app.page.Page` (what a view is given) and
  :class:`~glmix_viz.app.page.View` (what a view is).
* :mod:`glmix_viz.app.views` - the one list of views, in tab order; :mod:`glmix_viz.app.tabs` - one module each.
* :mod:`glmix_viz.app.links` - the query string that reopens a view; :mod:`glmix_viz.app.store` - uploads kept
  under their digest (capped, least recently used evicted); :mod:`glmix_viz.app.options` - the app's options,
  folders and limits; :mod:`glmix_viz.app.modelcache` - the one bounded cache of models in memory.
* :mod:`glmix_viz.app.threads` - how many torch threads an interactive session uses.

The pictures themselves are the library's (:mod:`glmix_viz.pictures`, :mod:`glmix_viz.figures`).

Importing this package imports nothing else (the command line reads :data:`MAIN_SCRIPT` without loading Streamlit).
"""

from pathlib import Path

MAIN_SCRIPT = Path(__file__).resolve().with_name("main.py")

__all__ = ["MAIN_SCRIPT"]
