"""``glmix-viz app``: the GLMix explorer, a Streamlit app shipped inside the package (installed or in a checkout).

``glmix-viz app [--checkpoints DIR] [--runs DIR] [--atlas DIR] [--device DEVICE] [-- streamlit options]`` runs
``streamlit run`` on
:data:`glmix_viz.app.MAIN_SCRIPT` in this process, with the explorer's settings
(``glmix_viz/app/streamlit_config.toml``) as options; options after ``--`` go to Streamlit as they are and win over
those settings, e.g. ``glmix-viz app -- --server.port 8502 --server.headless true``.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any, Dict, List

from glmix_viz.app import MAIN_SCRIPT
from glmix_viz.errors import GlmixVizError

HELP = ("Open the GLMix explorer (Streamlit) on the bundled demo model; --checkpoints adds a folder of checkpoints, "
        "--runs a run browser")
CONFIG = Path(__file__).resolve().parents[1] / "app" / "streamlit_config.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="a folder of checkpoints (.safetensors, .pth) to offer besides the demo model")
    parser.add_argument("--runs", type=Path, default=None,
                        help="a folder of run folders (pseudo-label, segment output) for the run browser; default: "
                             "$GLMIX_RUNS")
    parser.add_argument("--data", type=Path, default=None, metavar="PATH",
                        help="the data set of the --runs (any format of docs/own_data.md), instead of the folder "
                             "their summaries record (e.g. runs copied from another machine); default: $GLMIX_DATA")
    parser.add_argument("--atlas", type=Path, default=None,
                        help="a slot atlas folder (made by glmix-viz atlas) to open in the Atlas view")
    parser.add_argument("--uploads", type=Path, default=None,
                        help="where uploads are kept under their content digest, so that links can reopen them "
                             "(default: GLMIX_UPLOADS, else a private folder in the system's temporary folder)")
    parser.add_argument("--device", default=None,
                        help="the device chosen first in the sidebar: cpu, cuda, ... (default: cuda when available)")
    limits = parser.add_argument_group("what a visitor may cost (each also an environment variable)")
    limits.add_argument("--upload-cap-mb", type=float, default=None,
                        help="the upload store's size in MiB; the least recently used uploads are evicted beyond it "
                             "(default: GLMIX_UPLOAD_CAP_MB, else 512)")
    limits.add_argument("--random-variants", default=None,
                        help="comma-separated GLNet variants that 'Random weights' and links may build, or 'all' "
                             "(default: GLMIX_RANDOM_VARIANTS, else glnet_tiny,glnet_stl)")
    limits.add_argument("--models-cached", type=int, default=None,
                        help="models held in memory at once, least recently used dropped first (default: "
                             "GLMIX_MODELS_CACHED, else 3)")
    limits.add_argument("--model-cache-mb", type=float, default=None,
                        help="MiB of model weights held in memory at once; the model just opened is always kept "
                             "(default: GLMIX_MODEL_CACHE_MB, else 160)")
    parser.add_argument("streamlit_options", nargs="*", metavar="-- STREAMLIT_OPTION",
                        help="after --: options for `streamlit run`, e.g. -- --server.port 8502 --server.headless true")


def config_options(config: Dict[str, Any]) -> List[str]:
    """``{"server": {"port": 8502}}`` -> ``["--server.port", "8502"]`` (booleans as ``true`` / ``false``)."""
    options = []
    for section, values in config.items():
        for name, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            options += [f"--{section}.{name}", text]
    return options


def streamlit_argv(args: argparse.Namespace) -> List[str]:
    """The arguments of ``streamlit`` for this command: ``run SCRIPT [settings] [user options] -- [app options]``."""
    with CONFIG.open("rb") as stream:
        settings = config_options(tomllib.load(stream))
    app_options = []
    if args.checkpoints is not None:
        app_options += ["--checkpoints", str(args.checkpoints.expanduser().resolve())]
    if args.runs is not None:
        app_options += ["--runs", str(args.runs.expanduser().resolve())]
    if getattr(args, "data", None) is not None:
        app_options += ["--data", str(args.data.expanduser().resolve())]
    if getattr(args, "atlas", None) is not None:
        app_options += ["--atlas", str(args.atlas.expanduser().resolve())]
    if args.uploads is not None:
        app_options += ["--uploads", str(args.uploads.expanduser().resolve())]
    if args.device:
        app_options += ["--device", args.device]
    for name in ("upload_cap_mb", "random_variants", "models_cached", "model_cache_mb"):
        value = getattr(args, name, None)
        if value is not None:
            app_options += [f"--{name.replace('_', '-')}", str(value)]
    return ["run", str(MAIN_SCRIPT), *settings, *args.streamlit_options, "--", *app_options]


def run(args: argparse.Namespace) -> int:
    if args.checkpoints is not None and not args.checkpoints.expanduser().is_dir():
        raise GlmixVizError(f"--checkpoints {args.checkpoints}: no such folder")
    for name in ("upload_cap_mb", "models_cached", "model_cache_mb"):
        if getattr(args, name, None) is not None and getattr(args, name) <= 0:
            raise GlmixVizError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be positive")
    if args.runs is not None and not args.runs.expanduser().is_dir():
        raise GlmixVizError(f"--runs {args.runs}: no such folder")
    if getattr(args, "data", None) is not None:
        from glmix_viz.data.registry import detect_format

        detect_format(args.data)  # one line now rather than in the browser: missing, empty or unknown layout
    if getattr(args, "atlas", None) is not None and not (args.atlas.expanduser() / "atlas.json").is_file():
        raise GlmixVizError(f"--atlas {args.atlas}: no atlas.json there (make it with glmix-viz atlas ... --out DIR)")
    from streamlit.web import cli as streamlit_cli  # deferred: Streamlit loads plotly and its server (~1 s)

    sys.argv = ["streamlit", *streamlit_argv(args)]
    return int(streamlit_cli.main(args=sys.argv[1:], prog_name="streamlit", standalone_mode=False) or 0)
