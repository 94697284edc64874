"""Generate the result tables in ``docs/`` from ``bench/results/*.json`` and ``experiments/results/*.json``.

    python scripts/make_docs.py            # (re)write docs/results.md (and every other doc a spec names)
    python scripts/make_docs.py --check    # exit 1 when a doc on disk differs from what the JSON files give

Every table says which JSON file and which command made it. A results file must record ``"command"``: the exact
argv of the script that wrote it (``python bench/NAME.py --flag ...``). Before a table is written, that command is
re-parsed against the script's *current* arguments (the script's ``build_parser()``, imported, nothing run); a
command that no longer parses (a flag renamed or removed) is refused with one line and exit 2, so a stale table
cannot stay in the docs. A results file that no spec claims is refused the same way, so nothing is silently left out.

Extending: add a :class:`TableSpec` to :data:`SPECS` (or call :func:`register` from another module imported here):
the glob(s) of its results files, the script that writes them, the fields its table reads (dotted paths, ``*`` for
every key of a mapping; ``--smoke`` runs check them with :func:`check_results`), and a ``render(data) -> markdown``.

Scripts in ``bench/`` and ``experiments/`` use :func:`command_line` to record their command and, under ``--smoke``,
:func:`check_results` to check that what they wrote is what the generator reads.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
RESULT_GLOBS = ("bench/results/*.json", "experiments/results/*.json")
SCRIPT_DIRS = ("bench", "experiments")
DEFAULT_DOC = "docs/results.md"


class StaleResults(Exception):
    """A results file whose table cannot be (re)made: no command, a command that no longer parses, unclaimed."""


# ----------------------------------------------------------------------------------------------------------------------
# Commands: record, split, re-parse
# ----------------------------------------------------------------------------------------------------------------------


def command_line(script_file: str | Path, argv: Optional[Sequence[str]] = None) -> str:
    """The command to record in a results file: ``python <script relative to the repo> <argv>`` (shell-quoted)."""
    script = Path(script_file).resolve()
    try:
        shown = script.relative_to(ROOT).as_posix()
    except ValueError:
        shown = script.as_posix()
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", shown, *map(str, args)])


def smoke_folder(script_file: str | Path) -> Path:
    """A fresh temporary folder for a ``--smoke`` run's outputs (``$TMPDIR``): smoke runs never write in the repo."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"{Path(script_file).stem}_smoke_"))


def split_command(command: str) -> Tuple[str, List[str]]:
    """``(script path relative to the repo, its arguments)`` of a recorded command (``python[3.x] path.py args``)."""
    words = shlex.split(command)
    for index, word in enumerate(words):
        if word.endswith(".py"):
            path = Path(word)
            if path.is_absolute():
                try:
                    path = path.resolve().relative_to(ROOT)
                except ValueError:
                    pass
            return path.as_posix(), words[index + 1:]
    raise StaleResults(f"command {command!r} names no .py script")


_MODULES: Dict[str, Any] = {}


def load_script(script: str) -> Any:
    """The module of ``script`` (a path relative to the repo), imported once under a private name (nothing is run)."""
    if script not in _MODULES:
        path = ROOT / script
        if not path.is_file():
            raise StaleResults(f"script {script} does not exist")
        for folder in (str(ROOT), str(path.parent)):  # experiments import their siblings by name
            if folder not in sys.path:
                sys.path.insert(0, folder)
        name = "glmix_results_" + script.replace("/", "_").removesuffix(".py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[script] = module
    return _MODULES[script]


def load_parser_builder(script: str) -> Callable[[], argparse.ArgumentParser]:
    """The ``build_parser`` of ``script``."""
    builder = getattr(load_script(script), "build_parser", None)
    if builder is None:
        raise StaleResults(f"script {script} has no build_parser()")
    return builder


def check_command(command: Optional[str], source: str) -> Tuple[str, List[str]]:
    """Re-parse a recorded command against its script's current arguments; :class:`StaleResults` if it fails."""
    if not command:
        raise StaleResults(f"{source}: no 'command' recorded; rerun the script that made it")
    script, args = split_command(command)
    parser = load_parser_builder(script)()
    parser.prog = script
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit:
        reason = (stderr.getvalue().strip().splitlines() or ["argparse refused it"])[-1]
        raise StaleResults(f"{source}: its command no longer parses against {script} ({reason}); "
                           f"rerun it with the script's current flags") from None
    return script, args


# ----------------------------------------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class TableSpec:
    """How one kind of results file becomes a table.

    Attributes:
        name: the section title.
        patterns: globs (relative to the repo) of the results files this spec renders.
        script: the script that writes them (relative to the repo); the recorded command must name it.
        required: dotted paths the table reads (``*``: every key of a mapping, ``0``: a list's first item).
        render: ``render(data) -> markdown`` (numbers only from ``data``); default: the script's own ``table(data)``,
            so the table printed by a run and the one in the docs are one function.
        doc: the doc the table goes into.
        intro: a line above the tables of this spec.
    """

    name: str
    patterns: Tuple[str, ...]
    script: str
    required: Tuple[str, ...]
    render: Optional[Callable[[Dict[str, Any]], str]] = None
    doc: str = DEFAULT_DOC
    intro: str = ""


SPECS: List[TableSpec] = []


def register(spec: TableSpec) -> TableSpec:
    """Add a spec (other modules: results of new scripts). Later specs win for a file two specs claim."""
    SPECS.append(spec)
    return spec


def _missing(data: Any, path: str) -> List[str]:
    head, _, rest = path.partition(".")
    if head == "*":  # every key of a mapping (an empty one has nothing to miss)
        if not isinstance(data, dict):
            return [path]
        return [f"{key}.{miss}" for key, value in data.items() for miss in (_missing(value, rest) if rest else [])]
    if isinstance(data, list) and head.isdigit():
        if int(head) >= len(data):
            return [path]
        return [f"{head}.{miss}" for miss in _missing(data[int(head)], rest)] if rest else []
    if not isinstance(data, dict) or head not in data:
        return [path]
    return [f"{head}.{miss}" for miss in _missing(data[head], rest)] if rest else []


def missing_fields(data: Dict[str, Any], required: Iterable[str]) -> List[str]:
    """The dotted paths of ``required`` that ``data`` lacks (``*`` expands to every key of a mapping)."""
    return [miss for path in ("command", *required) for miss in _missing(data, path)]


def specs_for_script(script: str) -> List[TableSpec]:
    return [spec for spec in SPECS if spec.script == script]


def check_results(script_file: str | Path, json_path: str | Path) -> Dict[str, Any]:
    """``--smoke``: the JSON a script wrote has a command that parses and every field its specs' tables read.

    Raises SystemExit (one line) when it does not; returns the data.
    """
    script = Path(script_file).resolve().relative_to(ROOT).as_posix()
    data = json.loads(Path(json_path).read_text())
    try:
        recorded, _ = check_command(data.get("command"), str(json_path))
    except StaleResults as error:
        raise SystemExit(f"smoke check: {error}") from None
    if recorded != script:
        raise SystemExit(f"smoke check: {json_path}: command names {recorded}, not {script}")
    required = sorted({path for spec in specs_for_script(script) for path in spec.required})
    missing = missing_fields(data, required)
    if missing:
        raise SystemExit(f"smoke check: {json_path} lacks {', '.join(missing[:8])} (read by scripts/make_docs.py)")
    print(f"smoke check: {json_path} has the {len(required) + 1} fields the docs generator reads")
    return data


# ----------------------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------------------


HEADER = ("<!-- Generated by scripts/make_docs.py from bench/results/*.json and experiments/results/*.json: "
          "do not edit by hand; rerun `python scripts/make_docs.py`. -->\n")


def results_files(root: Path = ROOT) -> List[Path]:
    """The results files under ``root`` (the repo; tests pass a copy), sorted."""
    return sorted(path for pattern in RESULT_GLOBS for path in root.glob(pattern))


def claim(path: Path, root: Path = ROOT) -> TableSpec:
    relative = path.relative_to(root)
    claimed = [spec for spec in SPECS if any(relative.match(pattern) for pattern in spec.patterns)]
    if not claimed:
        raise StaleResults(f"{relative}: no table spec in scripts/make_docs.py claims this results file; add one")
    return claimed[-1]


def section(spec: TableSpec, relative: str, data: Dict[str, Any]) -> str:
    script, _ = check_command(data.get("command"), relative)
    if script != spec.script:
        raise StaleResults(f"{relative}: its command runs {script}, but its table spec expects {spec.script}")
    missing = missing_fields(data, spec.required)
    if missing:
        raise StaleResults(f"{relative}: lacks {', '.join(missing[:8])}, which its table reads")
    lines = [f"### `{relative}`", "", f"Made by `{data['command']}`"]
    if data.get("command_recovered"):
        lines[-1] += f" (recovered afterwards: {data['command_recovered']})"
    lines[-1] += "."
    body = "\n".join("#" + line if line.startswith("#") else line  # headings of the body sit below this one
                     for line in render(spec, data).rstrip().splitlines())
    return "\n".join(lines) + "\n\n" + body + "\n"


def render(spec: TableSpec, data: Dict[str, Any]) -> str:
    if spec.render is not None:
        return spec.render(data)
    table = getattr(load_script(spec.script), "table", None)
    if table is None:
        raise StaleResults(f"{spec.script} has no table(data) function and its spec gives no render")
    return table(data)


def generate(root: Path = ROOT) -> Dict[str, str]:
    """``{doc path relative to the repo: its text}`` from every results file; :class:`StaleResults` on the first
    file whose table cannot be made."""
    sections: Dict[str, Dict[str, List[str]]] = {}
    for path in results_files(root):
        spec = claim(path, root)
        relative = path.relative_to(root).as_posix()
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise StaleResults(f"{relative}: not JSON ({error})") from None
        sections.setdefault(spec.doc, {}).setdefault(spec.name, []).append(section(spec, relative, data))
    docs: Dict[str, str] = {}
    for doc, by_spec in sections.items():
        parts = [HEADER, "# Results\n", "Every table below is generated from the results file it names, made by the "
                 "command it names (timings on the shared 2-core machine are contended unless said otherwise).\n"]
        for spec in SPECS:
            if spec.doc == doc and spec.name in by_spec:
                parts.append(f"## {spec.name}\n")
                if spec.intro:
                    parts.append(spec.intro.rstrip() + "\n")
                parts += by_spec[spec.name]
        docs[doc] = "\n".join(parts)
    return docs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a doc differs")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="read the results files under this folder (default: this checkout) and write its docs/")
    args = parser.parse_args(argv)
    try:
        docs = generate(args.root)
    except StaleResults as error:
        print(f"make_docs: refused: {error}", file=sys.stderr)
        return 2
    stale = []
    for relative, text in docs.items():
        path = args.root / relative
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
    verb = "differ" if args.check else "written"
    print(f"make_docs: {len(docs)} doc(s); {', '.join(stale) if stale else 'none'} {verb}")
    return 1 if args.check and stale else 0


# ----------------------------------------------------------------------------------------------------------------------
# The specs: one per kind of results file. Add yours here (patterns, script, the fields its table reads).
# ----------------------------------------------------------------------------------------------------------------------

register(TableSpec(
    "Second stage: label sources carried through to a segmenter", ("bench/results/wsss_segment*.json",),
    "bench/wsss_segment.py",
    ("settings.seed", "roles", "label_sources.*.seeds.miou", "label_sources.*.masks.miou",
     "label_sources.*.masks_train.miou", "segmenters.*.miou", "segmenters.*.iou", "comparison", "targets",
     "timings_s.total"),
    intro="Held-out make-shapes seeds; every segmenter keeps its last epoch. Timings: one thread per step, "
          "on the shared machine (contended)."))
register(TableSpec(
    "Pseudo-masks, classification and grouping on held-out shapes",
    ("bench/results/wsss_shapes*.json", "experiments/results/wsss_shapes*.json"), "bench/wsss_shapes.py",
    ("classification.map", "classification.ap", "pseudo_masks.*.miou", "pseudo_masks.*.miou_crf",
     "pseudo_masks.*.threshold", "pseudo_masks.*.per_class_iou", "pseudo_masks.*.per_class_iou_crf",
     "tuning.methods", "summary.best_slot_method", "summary.targets", "grouping.blocks", "grouping.best_block",
     "grouping.images")))
register(TableSpec(
    "Backbone latency and memory", ("bench/results/backbone*.json",), "bench/backbone.py",
    ("device", "threads", "torch", "rows"),
    intro="Ratios are medians of models timed round-robin in the same rounds, [min, max] over the runs."))
register(TableSpec(
    "Backbone profile", ("bench/results/profile_*.json",), "bench/profile_block.py", ("title", "tables.labels")))
register(TableSpec(
    "Pseudo-label pipeline and refinements (dense CRF, PAR, none) at VOC size", ("bench/results/pseudo_label*.json",),
    "bench/pseudo_label.py",
    ("command", "images", "size", "model", "method", "device", "cpu_count", "load_average_start", "load_average_end",
     "pipeline.*.refine", "pipeline.*.workers", "pipeline.*.images_per_s", "pipeline.*.s_per_image.network",
     "pipeline.*.s_per_image.refine", "pipeline.*.s_per_image.write", "pipeline.*.stage_share",
     "stages_alone.network_s_per_image", "stages_alone.refine.*.wall_s_per_image",
     "stages_alone.refine.*.cpu_s_per_image", "refine_parallel", "miou.pooled", "miou.per_seed", "goals")))
register(TableSpec(
    "Explorer latency", ("bench/results/app_latency*.json",), "bench/app_latency.py",
    ("side", "runs", "threads", "rows.0.model", "rows.0.steps", "rows.0.total", "rows.0.target")))
register(TableSpec(
    "Explorer memory over large-model links", ("bench/results/app_memory*.json",), "bench/app_memory.py",
    ("machine", "variants", "slack_mib", "configurations.*.baseline_rss_mib", "configurations.*.final_rss_mib",
     "configurations.*.growth_mib", "configurations.*.largest_model_mib", "configurations.*.steps",
     "configurations.*.within_baseline_plus_largest"),
    intro="Server RSS after opening four large-model links in turn, with the explorer's default model cache and "
          "without a bound (docs/explorer.md)."))
register(TableSpec(
    "Command-line start-up", ("bench/results/cli_help*.json",), "bench/cli_help.py",
    ("runs", "reference", "machine.load_1min", "median_s", "ratio_to_reference", "goal_ratio", "goal_met")))
register(TableSpec(
    "Slot atlas: demo model against its untrained copy", ("experiments/results/atlas_shapes*.json",),
    "experiments/atlas_shapes.py",
    ("data.images", "clusters", "best_block", "blocks.*.demo.purity", "blocks.*.untrained.purity",
     "blocks.*.demo.object_purity", "blocks.*.untrained.object_purity", "blocks.*.purity_difference",
     "blocks.*.object_purity_difference", "blocks.*.demo.nmi", "blocks.*.untrained.nmi", "runs")))
register(TableSpec(
    "Object-centric metrics of the demo model", ("experiments/results/object_metrics_demo*.json",),
    "experiments/object_metrics_demo.py", ("sets.*.images", "sets.*.reports")))
register(TableSpec(
    "Grouping-loss sweep", ("experiments/results/grouping_losses*.json",), "experiments/grouping_losses.py",
    ("settings.*.heldout.map", "settings.*.heldout.grouping.best_block", "settings.*.heldout.grouping.margin")))
register(TableSpec(
    "Set-up sweep", ("experiments/results/grouping_sweep*.json",), "experiments/grouping_sweep.py",
    ("results",)))
register(TableSpec(
    "Demo model and its BCE-only control", ("experiments/results/train_demo*.json",), "experiments/train_demo.py",
    ("sets.*.targets", "commands")))
register(TableSpec(
    "Semantic slots: training recipes against the demo recipe (issue 29)", ("experiments/results/semantic_slots*.json",),
    "experiments/semantic_slots.py", ("setup.heldout_images", "heldout", "goals"),
    intro="Fine-tunes of the demo model at one budget per file, scored on held-out make-shapes seeds (named in each "
          "table's heading) by grouping-scores and the held-out bench; see docs/semantic_slots.md."))
register(TableSpec(
    "The one bootstrap: coverage and cost", ("bench/results/scoring_bootstrap*.json",), "bench/scoring_bootstrap.py",
    ("default_resamples", "machine.load_1min", "coverage.0.trials", "coverage.0.images", "coverage.0.coverage",
     "coverage.0.mean_width", "coverage.0.coverage_standard_error", "cost.seconds", "cost.split_images",
     "cost.atlas_images", "cost.bca_over_percentile"),
    intro="glmix_viz.scoring.stats (scipy.stats.bootstrap): how often its 95 % interval holds the true value on "
          "simulated data sets, and its cost (docs/scoring.md)."))
register(TableSpec(
    "Slot interventions: approx vs exact, the block the decision depends on, faithfulness",
    ("bench/results/interventions*.json",), "bench/interventions.py",
    ("explorer_block", "eval_seeds", "agreement.images", "agreement.median_spearman", "agreement.blocks",
     "agreement.time_per_call_ms_contended", "agreement.most_depended_on_block_logit", "tuning.chosen",
     "tuning.deletion_auc", "faithfulness")))

if __name__ == "__main__":
    sys.exit(main())
