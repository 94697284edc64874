"""The explorer's own options and the folders it was started with.

Options come after ``--`` of ``streamlit run`` (``glmix-viz app`` puts them there), each with an environment
variable as fallback: ``--checkpoints`` (``GLMIX_CHECKPOINTS``), ``--device``, ``--uploads`` (``GLMIX_UPLOADS``: the
upload store, default a private folder in the system's temporary folder), ``--runs`` (``GLMIX_RUNS``) and
``--atlas`` (``GLMIX_ATLAS``) and ``--data`` (``GLMIX_DATA``: the data set of the runs, instead of the one their
summaries record). :func:`folders` names the folders a link may point into
(:mod:`glmix_viz.app.links`): nothing outside them is ever opened from a link or typed into a folder box.

What a visitor may cost (:data:`LIMIT_OPTIONS`, each also an environment variable):

* ``--upload-cap-mb`` (``GLMIX_UPLOAD_CAP_MB``, default 512): the upload store's size; least recently used uploads
  are evicted beyond it (:mod:`glmix_viz.app.store`);
* ``--random-variants`` (``GLMIX_RANDOM_VARIANTS``, default ``glnet_tiny,glnet_stl``): the variants that "Random
  weights" and a link's ``model=random:<variant>`` may build; ``all`` for every registered one;
* ``--models-cached`` (``GLMIX_MODELS_CACHED``, default 3) and ``--model-cache-mb`` (``GLMIX_MODEL_CACHE_MB``,
  default 160): the models held in memory at once, least recently used dropped first; the model just opened is
  always kept, so memory holds at most max(cap, the largest model) of models (:mod:`glmix_viz.app.modelcache`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from glmix_viz.open import demo_checkpoint

FOLDER_OPTIONS = {"checkpoints": "GLMIX_CHECKPOINTS", "uploads": "GLMIX_UPLOADS", "runs": "GLMIX_RUNS",
                  "atlas": "GLMIX_ATLAS", "data": "GLMIX_DATA"}


DEFAULT_RANDOM_VARIANTS = ("glnet_tiny", "glnet_stl")
LIMIT_OPTIONS = {  # option -> (environment variable, default, what it is)
    "upload_cap_mb": ("GLMIX_UPLOAD_CAP_MB", 512.0, "the upload store's size in MiB; least recently used uploads "
                                                    "are evicted beyond it"),
    "random_variants": ("GLMIX_RANDOM_VARIANTS", ",".join(DEFAULT_RANDOM_VARIANTS),
                        "comma-separated GLNet variants that 'Random weights' and links may build ('all': every one)"),
    "models_cached": ("GLMIX_MODELS_CACHED", 3, "models held in memory at once (least recently used dropped first)"),
    "model_cache_mb": ("GLMIX_MODEL_CACHE_MB", 160.0, "MiB of model weights held in memory at once; the model just "
                                                      "opened is always kept"),
}


def app_options() -> argparse.Namespace:
    """The app's options from the command line (unknown ones are left alone): folders, the device and the limits."""
    parser = argparse.ArgumentParser(add_help=False)
    for name in FOLDER_OPTIONS:
        parser.add_argument(f"--{name}", default=None)
    parser.add_argument("--device", default=None)
    for name in LIMIT_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def limit(name: str) -> Any:
    """A limit of :data:`LIMIT_OPTIONS`: the command line's, else its environment variable's, else the default (an
    unreadable value falls back to the default, with a line in the server's log)."""
    variable, default, _ = LIMIT_OPTIONS[name]
    text = getattr(app_options(), name, None) or os.environ.get(variable)
    if text is None:
        return default
    try:
        value = type(default)(str(text).strip())
        if isinstance(value, (int, float)) and value <= 0:
            raise ValueError("not positive")
        return value
    except ValueError:
        print(f"glmix-viz app: --{name.replace('_', '-')} {text!r} is not a positive number; using {default}",
              file=sys.stderr)
        return default


def upload_cap_bytes() -> int:
    """The upload store's size cap in bytes."""
    return int(limit("upload_cap_mb") * 2**20)


def random_variants(registered: List[str]) -> List[str]:
    """The registered variants that random weights may be built for, in registry order."""
    text = str(limit("random_variants")).strip()
    if text == "all":
        return list(registered)
    wanted = {name.strip() for name in text.split(",") if name.strip()}
    return [name for name in registered if name in wanted] or [name for name in registered
                                                               if name in DEFAULT_RANDOM_VARIANTS]


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


def inside_folders(typed: str) -> Optional[Path]:
    """The folder a visitor typed, resolved, when it lies inside one of :func:`folders` (else None, whether or not
    it exists: the answer says nothing about folders outside them). A relative path is taken from the first
    folder that holds it."""
    text = typed.strip()
    if not text or "\x00" in text:
        return None
    candidates = []
    for root in folders().values():
        root = root.expanduser().resolve()
        path = Path(text).expanduser()
        path = (path if path.is_absolute() else root / path).resolve()
        if path == root or path.is_relative_to(root):
            candidates.append(path)
    return next((path for path in candidates if path.exists()), candidates[0] if candidates else None)
