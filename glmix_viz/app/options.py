"""The explorer's own options and the folders it was started with.

Options come after ``--`` of ``streamlit run`` (``glmix-viz app`` puts them there), each with an environment
variable as fallback: ``--checkpoints`` (``GLMIX_CHECKPOINTS``), ``--device``, ``--uploads`` (``GLMIX_UPLOADS``: the
upload store, default a private folder in the system's temporary folder), ``--runs`` (``GLMIX_RUNS``) and
``--atlas`` (``GLMIX_ATLAS``) and ``--data`` (``GLMIX_DATA``: the data set of the runs, instead of the one their
summaries record). :func:`folders` names the folders a link may point into
(:mod:`glmix_viz.app.links`): nothing outside them is ever opened from a link.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional

from glmix_viz.open import demo_checkpoint

FOLDER_OPTIONS = {"checkpoints": "GLMIX_CHECKPOINTS", "uploads": "GLMIX_UPLOADS", "runs": "GLMIX_RUNS",
                  "atlas": "GLMIX_ATLAS", "data": "GLMIX_DATA"}


def app_options() -> argparse.Namespace:
    """The app's options from the command line (unknown ones are left alone): folders and the device."""
    parser = argparse.ArgumentParser(add_help=False)
    for name in FOLDER_OPTIONS:
        parser.add_argument(f"--{name}", default=None)
    parser.add_argument("--device", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def option_folder(name: str) -> Optional[str]:
    """A folder option (a key of :data:`FOLDER_OPTIONS`): the command line's, else its environment variable's."""
    return getattr(app_options(), name) or os.environ.get(FOLDER_OPTIONS[name]) or None


def upload_folder() -> Path:
    """Where uploads are kept under their content digest, so that a link can name them."""
    chosen = option_folder("uploads")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(chosen).expanduser() if chosen else Path(tempfile.gettempdir()) / f"glmix-viz-uploads-{uid}"


def folders() -> Dict[str, Path]:
    """The folders the app was started with, by the name a link gives them: ``demo``, ``uploads`` and whichever of
    ``checkpoints``, ``runs``, ``atlas`` were given."""
    named = {"uploads": upload_folder()}
    demo = demo_checkpoint()
    if demo is not None:
        named["demo"] = demo.parent
    for name in ("checkpoints", "runs", "atlas"):
        folder = option_folder(name)
        if folder:
            named[name] = Path(folder).expanduser()
    return named
