"""The explorer's run browser: run folders below ``--runs DIR`` (or ``GLMIX_RUNS``), their scores, their images worst
first, one image with its errors, and two runs of the same split side by side.

Library underneath: :mod:`glmix_viz.runs` (what a run folder holds), :mod:`glmix_viz.evaluate` (per-image scores,
comparison), :func:`glmix_viz.figures.error_panels` (the pictures, the same as ``glmix-viz evaluate --figure``).
A run without ``eval.json`` (or with one written before per-image scores existed) is scored here, in memory, on the
label maps that are there; nothing is written into run folders.
"""

from __future__ import annotations

import base64
import io
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from glmix_viz.app import data, links
from glmix_viz.app.options import option_folder
from glmix_viz.app.page import remember
from glmix_viz.data.base import Split
from glmix_viz.labels import voc_palette
from glmix_viz.pseudo import ScoreSettings
from glmix_viz.errors import GlmixVizError, one_line
from glmix_viz.evaluate import (
    compare_scores,
    evaluate_predictions,
    load_pair,
    paired_changes,
    worst_images,
)
from glmix_viz.figures import ERROR_PANEL_TITLES, error_panels
from glmix_viz.scoring.errors import ERROR_KINDS
from glmix_viz.runs import EVAL_FILE, Run, find_runs, open_recorded_dataset, open_run_dataset, read_run
from glmix_viz.viz import ERROR_COLORS, label_legend

RESOLUTIONS_NOTE = "the run's input size"
THUMBNAIL_SIDE = 64
PANEL_SIDE = 256
DEFAULT_ROWS = 50
RUN_TABS = ["Images, worst first", "Compare with another run"]


# ----------------------------------------------------------------------------------------------------------------------
# Cached reading (keyed by the folder and a stamp that changes when the folder or its eval.json does)
# ----------------------------------------------------------------------------------------------------------------------


def folder_stamp(path: Path) -> str:
    """Changes when a file is added to, renamed into or removed from the folder, or ``eval.json`` is rewritten."""
    evaluation = path / EVAL_FILE
    return f"{path.stat().st_mtime_ns}:{evaluation.stat().st_mtime_ns if evaluation.is_file() else 0}"


@st.cache_data(ttl=10, show_spinner=False)
def run_folders(root: str) -> List[str]:
    """The run folders below ``root`` (refreshed every 10 s, so runs that appear are listed)."""
    return [str(path) for path in find_runs(root)]


@st.cache_data(max_entries=64, show_spinner=False)
def _read_run(path: str, stamp: str, root: str) -> Run:
    return read_run(path, root)


def load_run(path: str, root: str) -> Run:
    return _read_run(path, folder_stamp(Path(path)), root)


@st.cache_resource(max_entries=8, show_spinner="Opening the run's data set...")
def _dataset(data_root: str, split: str) -> Any:
    return open_recorded_dataset(data_root, split)


def data_root_of(run: Run) -> Optional[str]:
    """The run's data set folder: ``app --data`` when given (runs copied from another machine), else the one its
    summary records."""
    return option_folder("data") or run.data_root


def run_dataset(run: Run) -> Tuple[Optional[Any], Optional[str]]:
    """``(data set, None)``, or ``(None, one line saying why not)``."""
    try:
        if not data_root_of(run) or not run.split:
            return open_run_dataset(run), None  # raises the one-line reason
        return _dataset(data_root_of(run), run.split), None
    except GlmixVizError as error:
        return None, one_line(error)


@st.cache_data(max_entries=16, show_spinner="Scoring the run's label maps...")
def _scored(path: str, stamp: str, data_root: str, split: str) -> Dict[str, Any]:
    return evaluate_predictions(_dataset(data_root, split), path, missing="skip")


def run_scores(run: Run) -> Tuple[Optional[Dict[str, Any]], str]:
    """The run's scores with per-image rows and where they come from: its ``eval.json``, else computed here."""
    if run.evaluation is not None and "per_image" in run.evaluation:
        stale = " (older than the run's summary: rerun glmix-viz evaluate)" if run.evaluation_is_stale() else ""
        return run.evaluation, f"scores from {run.path / EVAL_FILE}{stale}"
    dataset, problem = run_dataset(run)
    if dataset is None:
        return None, f"no per-image scores: no {EVAL_FILE} with them, and {problem}"
    if not dataset.has_masks:
        return None, f"no per-image scores: {dataset.root} has no ground-truth masks (image-level labels only)"
    scores = _scored(str(run.path), folder_stamp(run.path), data_root_of(run), run.split)
    return scores, (f"scored here on the {scores['num_images']} label maps present "
                    f"(no {EVAL_FILE} with per-image scores)")


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumbnail(data_root: str, split: str, image_id: str, side: int) -> Optional[str]:
    """A data URL of the image shrunk to ``side`` pixels, for the table's image column (None: unreadable)."""
    try:
        image = Image.fromarray(_dataset(data_root, split).load_image(image_id))
    except GlmixVizError:
        return None
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ----------------------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------------------


def gt_classes(row: Mapping[str, Any]) -> set:
    """Class indices present in an image's ground truth (from its sparse confusion)."""
    return {int(g) for g, _, pixels in row["confusion"] if pixels}


def image_table(scores: Mapping[str, Any], classes: List[int], run: Run, with_thumbnails: bool,
                limit: int) -> pd.DataFrame:
    """The ``limit`` worst images whose ground truth holds every class in ``classes``, one row each (percentages)."""
    names = list(scores["class_names"])
    rows = [row for row in worst_images(scores) if set(classes) <= gt_classes(row)][:limit]
    table = pd.DataFrame({
        "id": [row["id"] for row in rows],
        "mIoU %": [None if row["miou"] is None else 100 * row["miou"] for row in rows],
        "pixel acc. %": [None if row["pixel_accuracy"] is None else 100 * row["pixel_accuracy"] for row in rows],
        "unsure %": [100 * row["unsure_share"] for row in rows],
        "missed": [", ".join(row["missed"]) for row in rows],
        "predicted, absent": [", ".join(row["predicted_absent"]) for row in rows],
        **{f"{name} IoU %": [None if row["iou"].get(name) is None else 100 * row["iou"][name] for row in rows]
           for name in names},
    })
    if with_thumbnails:
        table.insert(1, "image", [_thumbnail(data_root_of(run), run.split, image_id, THUMBNAIL_SIDE)
                                  for image_id in table["id"]])
    return table


def image_class_table(row: Mapping[str, Any], names: List[str]) -> pd.DataFrame:
    """One image's classes (in its ground truth or prediction): IoU, ground-truth and predicted pixels."""
    conf = np.zeros((len(names), len(names)), dtype=np.int64)
    for g, p, pixels in row["confusion"]:
        conf[g, p] += pixels
    present = [k for k in range(len(names)) if conf[k].sum() or conf[:, k].sum()]
    return pd.DataFrame({
        "class": [names[k] for k in present],
        "IoU %": [None if row["iou"].get(names[k]) is None else 100 * row["iou"][names[k]] for k in present],
        "ground-truth pixels": [int(conf[k].sum()) for k in present],
        "predicted pixels": [int(conf[:, k].sum()) for k in present],
        "correct pixels": [int(conf[k, k]) for k in present],
    })


# ----------------------------------------------------------------------------------------------------------------------
# Views
# ----------------------------------------------------------------------------------------------------------------------


def choose_run(root: str, key: str, label: str, like: Optional[Run] = None, first: Optional[str] = None
               ) -> Optional[str]:
    """A selectbox of the run folders below ``root`` (by their path relative to it); ``like``: only the other runs
    of that run's data set and split; ``first``: the run (relative path) chosen first, e.g. by a link."""
    folders = run_folders(root)
    if like is not None:
        folders = [path for path in folders if path != str(like.path) and _same_split(load_run(path, root), like)]
    if not folders:
        if first is not None:
            links.refuse("run", first, "is no run below the runs folder", "opened the run browser without a run")
        return None
    names = [relative_name(path, root) for path in folders]
    if first is not None and first not in names:
        links.refuse("run", first, "is no run below the runs folder", f"opened {names[0]} instead")
    index = names.index(first) if first in names else 0
    return st.selectbox(label, folders, index=index, key=key, format_func=lambda path: relative_name(path, root))


def relative_name(path: str, root: str) -> str:
    """How a link names a run folder: its path relative to the runs folder ("." for the folder itself)."""
    return Path(path).relative_to(root).as_posix() or "."


def _same_split(run: Run, other: Run) -> bool:
    """Whether two runs were made on the same data set and split (as far as their summaries say)."""
    return run.split == other.split and (run.data_root == other.data_root or None in (run.data_root, other.data_root))


def run_header(run: Run) -> None:
    """Name, kind, status, model (or that its file is gone), progress, unreadable files, settings."""
    model = run.model
    described = model.get("variant") or model.get("backbone") or "?"
    st.subheader(f"{run.name} · {run.kind} · {run.status}")
    st.caption(f"**Model** {described} · {run.model_path or 'bundled demo model or random weights'} · "
               f"**Data** {run.data_root or '?'} · split {run.split or '?'}")
    if run.model_file_problem():
        st.warning(run.model_file_problem(), icon=":material/link_off:")
    if not run.progress.complete:
        st.info(f"Run still being written or incomplete: {run.progress.describe()}", icon=":material/hourglass:")
    for problem in run.problems:
        st.error(problem)
    with st.expander("Settings as recorded in the summary"):
        st.json({"settings": run.settings, "score_settings": run.score_settings, "model": model}, expanded=False)


def scores_view(scores: Mapping[str, Any], source: str) -> None:
    """The split's mIoU, pixel and mean accuracy, and the per-class IoU."""
    percent = lambda value: "n/a" if value is None else f"{100 * value:.2f} %"  # noqa: E731
    columns = st.columns(4)
    columns[0].metric("mIoU", percent(scores["miou"]))
    columns[1].metric("pixel accuracy", percent(scores["pixel_accuracy"]))
    columns[2].metric("mean accuracy", percent(scores["mean_accuracy"]))
    columns[3].metric("images scored", f"{scores['num_images']} of {scores.get('num_ids', '?')}")
    rows = scores["per_class"]
    per_class = pd.DataFrame({"class": [row["name"] for row in rows],
                              "IoU %": [None if row["iou"] is None else 100 * row["iou"] for row in rows]})
    st.dataframe(per_class.set_index("class").T, width="stretch",
                 column_config={name: st.column_config.NumberColumn(format="%.1f") for name in per_class["class"]})
    st.caption(source)


def images_view(run: Run, scores: Mapping[str, Any], dataset: Split) -> Optional[str]:
    """The images worst first (filter by class, sort by any column); returns the id chosen in the table or below."""
    names = list(scores["class_names"])
    left, right = st.columns([2, 1])
    classes = left.multiselect("Only images whose ground truth holds", list(range(len(names))), key="run_classes",
                               format_func=lambda index: names[index])
    shown = right.number_input("Rows", 5, 1000, DEFAULT_ROWS, step=25, key="run_rows")
    table = image_table(scores, classes, run, with_thumbnails=dataset is not None, limit=int(shown))
    percent = {column: st.column_config.NumberColumn(format="%.1f") for column in table if column.endswith("%")}
    event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key=f"run_table::{run.path}", column_config={
                             "image": st.column_config.ImageColumn("image", width="small"), **percent})
    ids = list(table["id"])
    if not ids:
        st.info("No image of this run matches.")
        return None
    picked = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    key = image_key(run)
    if picked and picked[0] < len(ids):
        st.session_state[key] = ids[picked[0]]
    state = links.opened()
    linked = state.image_id if state.run in (None, run.name) else None
    if linked is not None and linked not in ids:
        links.refuse("image_id", linked, "is not among the images listed for this run", f"opened {ids[0]} instead")
    return st.selectbox("Image", ids, key=key, index=ids.index(linked) if linked in ids else 0,
                        help="or click a row of the table")


def image_key(run: Run) -> str:
    """Session-state key of the image chosen in a run (each run keeps its own)."""
    return f"run_image_id::{run.path}"


def error_legend() -> np.ndarray:
    return label_legend(ERROR_COLORS, list(ERROR_KINDS), cols=3, column_width=150)


def class_legend(names: List[str], palette: np.ndarray, *maps: np.ndarray, ignore: Optional[int] = 255
                 ) -> Tuple[np.ndarray, List[str]]:
    """One legend of the ground truth and prediction panels: every label found in ``maps``, in the colours the panels
    are drawn with (``palette``), the data set's ``ignore`` value as "ignored / unsure"; returns it and the names it
    lists."""
    found = sorted({int(value) for labels in maps for value in np.unique(labels)})
    shown = [value for value in found if value < len(names) or value == ignore]
    words = [names[value] if value < len(names) and value != ignore else "ignored / unsure" for value in shown]
    return label_legend(palette[shown], words, cols=min(4, max(1, len(shown))), column_width=150), words


def _ids(dataset: Split) -> Dict[str, Any]:
    """The data set's background class and ignore value, for the error maps."""
    return {"background": dataset.background, "ignore": dataset.ignore}


def image_view(run: Run, dataset: Split, row: Mapping[str, Any], names: List[str]) -> None:
    """Image, ground truth, the run's mask and the error map; the image's per-class scores; open in the explorer."""
    try:
        gt, pred = load_pair(dataset, run.path, row["id"])
        image = dataset.load_image(row["id"])
    except GlmixVizError as error:
        st.error(one_line(error))
        return
    palette = voc_palette(256)
    panels = error_panels(image, gt, pred, palette, max_side=PANEL_SIDE, **_ids(dataset))
    st.image(panels, caption=[f"{title} · {row['id']}" for title in ERROR_PANEL_TITLES])
    legend, _ = class_legend(names, palette, gt, pred, ignore=_ids(dataset)["ignore"])
    st.image(legend, caption="classes of the ground truth and the prediction (their colours in both panels)")
    st.image(error_legend(), caption="error map")
    st.dataframe(image_class_table(row, names), hide_index=True,
                 column_config={"IoU %": st.column_config.NumberColumn(format="%.1f")})
    open_button(run, row["id"], "image")


def open_button(run: Run, image_id: str, where: str) -> None:
    """The one action that opens this image in the grouping tabs with the run's model and score settings."""
    problem = run.model_file_problem()
    if st.button("Open in the grouping tabs", key=f"open::{where}::{run.path}::{image_id}", disabled=problem is not None,
                 help=problem or "the run's model and score settings, this image", icon=":material/open_in_new:"):
        method = (run.score_settings or {}).get("method")
        links.reopen(links.ViewState(run=run.name, image_id=image_id, tab="groupings", method=method))


def compare_view(root: str, run: Run, scores: Mapping[str, Any]) -> None:
    """A second run of the same split: paired differences and the images where the two disagree most."""
    other_path = choose_run(root, "run_compare", "Compare with (B)", like=run)
    if other_path is None:
        st.info("No other run of the same data set and split to compare with.")
        return
    other = load_run(other_path, root)
    other_scores, source = run_scores(other)
    if other_scores is None:
        st.warning(source)
        return
    try:
        comparison = compare_scores(scores, other_scores)  # the defaults of evaluate --compare: the same interval
    except GlmixVizError as error:
        st.warning(one_line(error))
        return
    paired_summary(comparison)
    disagreements(run, other, scores, other_scores)


def paired_summary(comparison: Mapping[str, Any]) -> None:
    paired = comparison["paired"]
    for label, key in (("mean per-image mIoU", "mean_image_miou"), ("split mIoU", "split_miou")):
        interval = paired[f"{key}_interval"]
        verdict = "contains 0: no clear difference" if interval["contains_zero"] else (
            "B better" if interval["low"] > 0 else "B worse")
        st.write(f"**{label}** B - A over {paired['num_images']} paired images: "
                 f"{100 * paired[f'{key}_difference']:+.2f} points, 95 % bootstrap interval "
                 f"[{100 * interval['low']:+.2f}, {100 * interval['high']:+.2f}] ({verdict})")
    per_class = {name: None if row["difference"] is None else 100 * row["difference"]
                 for name, row in comparison["per_class"].items()}
    st.dataframe(pd.DataFrame([per_class], index=["B - A IoU points"]), width="stretch",
                 column_config={name: st.column_config.NumberColumn(format="%+.1f") for name in per_class})


def disagreements(run: Run, other: Run, scores: Mapping[str, Any], other_scores: Mapping[str, Any]) -> None:
    """The images where the two runs differ most (either way), and one of them in both runs."""
    changes = paired_changes(scores, other_scores)[:DEFAULT_ROWS]
    table = pd.DataFrame({"id": [c["id"] for c in changes], "A mIoU %": [100 * c["a"] for c in changes],
                          "B mIoU %": [100 * c["b"] for c in changes],
                          "B - A": [100 * c["difference"] for c in changes]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        column: st.column_config.NumberColumn(format="%+.1f" if column == "B - A" else "%.1f") for column in table
        if column != "id"})
    dataset, problem = run_dataset(run)
    if not changes or dataset is None:
        st.info(problem or "No image scored in both runs.")
        return
    chosen = st.selectbox("Image to see in both runs", list(table["id"]), key="compare_image_id")
    palette, seen = voc_palette(256), []
    for label, shown in (("A", run), ("B", other)):
        try:
            gt, pred = load_pair(dataset, shown.path, chosen)
            panels = error_panels(dataset.image(chosen), gt, pred, palette, max_side=PANEL_SIDE,
                                  **_ids(dataset))
        except GlmixVizError as error:
            st.error(one_line(error))
            continue
        seen += [gt, pred]
        st.image(panels[1:], caption=[f"{label}: {title}" for title in ERROR_PANEL_TITLES[1:]])
        open_button(shown, chosen, f"compare-{label}")
    if seen:
        legend, _ = class_legend(list(scores["class_names"]), palette, *seen, ignore=_ids(dataset)["ignore"])
        st.image(legend, caption="classes of the ground truth and both predictions (their colours in every panel)")


def runs_page(root: str) -> None:
    """The run browser page."""
    st.title("Runs")
    path = choose_run(root, "run", "Run (A)", first=links.opened().run)
    if path is None:
        st.info(f"No run folder (one holding a summary*.json) below {root}.")
        return
    run = load_run(path, root)
    links.note(page="runs", run=run.name, model=None, image=None, tab=None, block=None, method=None,
               resolution=None)
    run_header(run)
    scores, source = run_scores(run)
    if scores is None:
        st.warning(source)
        return
    scores_view(scores, source)
    dataset, problem = run_dataset(run)
    if problem:
        st.warning(problem, icon=":material/folder_off:")
    browse, compare = st.tabs(RUN_TABS, key="run_view", on_change="rerun")
    with browse:
        if browse.open:
            image_id = images_view(run, scores, dataset)
            links.note(image_id=image_id)
            rows = {row["id"]: row for row in scores["per_image"]}
            if image_id is not None and dataset is not None:
                image_view(run, dataset, rows[image_id], list(scores["class_names"]))
    with compare:
        if compare.open:
            compare_view(root, run, scores)


# ----------------------------------------------------------------------------------------------------------------------
# Plugged into the explorer (glmix_viz.app.main): the page switch, and a run's image in the grouping tabs
# ----------------------------------------------------------------------------------------------------------------------


def runs_root() -> Optional[str]:
    """The runs folder the app was started with (``--runs DIR`` or ``GLMIX_RUNS``), resolved; None without one."""
    folder = option_folder("runs")
    return str(Path(folder).expanduser().resolve()) if folder else None


def opened_run(root: str, name: str) -> Run:
    """The run folder a link names, only if the run browser lists it (a name is never used as a path on its own)."""
    by_name = {relative_name(path, root): path for path in run_folders(root)}
    if name not in by_name:
        raise links.LinkError("is no run below the runs folder", "run")
    return load_run(by_name[name], root)


def run_subject(device: str) -> Optional[Tuple[data.LoadedModel, data.LoadedImage, Optional[ScoreSettings]]]:
    """The model, image and score settings of a run image opened in the explorer (by the run browser's button or a
    link with ``run`` and ``image_id``); None when none is open. A run that cannot be opened says so in one line and
    stops the page."""
    state, root = links.opened(), runs_root()
    if not (state.run and state.image_id and state.page != "runs" and root):
        return None
    try:
        run = opened_run(root, state.run)
        if run.model_file_problem():
            raise links.LinkError(run.model_file_problem(), "run")
        dataset, problem = run_dataset(run)
        if dataset is None:
            raise links.LinkError(problem, "run")
        loaded = _run_model(run, device)
        image = _run_image(run, dataset, state.image_id)
    except GlmixVizError as error:
        name = getattr(error, "parameter", None) or "run"
        links.refuse(name, state.run if name == "run" else state.image_id, one_line(error, with_type=False),
                     "opened the explorer on its own model and image instead")
        return None
    settings = ScoreSettings.from_dict(run.score_settings) if run.score_settings else None
    _apply_settings_once(run, state.image_id, settings)
    links.note(run=run.name, image_id=state.image_id)
    return loaded, image, settings


def _run_model(run: Run, device: str) -> data.LoadedModel:
    if run.model_path is None:
        return data.demo_model(device)
    path = Path(run.model_path)
    return data.checkpoint_model(path, None, device, label=f"{path.name} (the model of run {run.name})", name=path.name)


def _run_image(run: Run, dataset: Split, image_id: str) -> data.LoadedImage:
    """The run's image, named after its id and run, with the image-level labels the run was given."""
    if image_id not in set(dataset.ids):
        raise links.LinkError(f"is no image of the split of run {run.name}", "image_id")
    path = dataset.image_path(image_id)
    image = data.decode_upload(path.name, path.read_bytes())
    labels = np.flatnonzero(dataset.image_labels(image_id))
    names = tuple(dataset.class_names[index + 1] for index in labels)
    return dataclasses.replace(image, name=f"{image_id} (run {run.name})", labels=names)


def _apply_settings_once(run: Run, image_id: str, settings: Optional[ScoreSettings]) -> None:
    """Put the run's flip and background rule and threshold into the predictions tab's widgets, once per opening."""
    key = f"run_settings_applied::{run.path}::{image_id}"
    if settings is None or st.session_state.get(key):
        return
    st.session_state[key] = True
    st.session_state["pseudo_flip"] = bool(settings.flip)
    remember(f"bg_rule::{settings.method}", settings.bg_rule)
    remember(f"bg_param::{settings.method}::{settings.bg_rule}", float(settings.bg_param))


def run_sidebar(run_name: str, image_id: str) -> None:
    """In the sidebar of a run image: where it comes from, back to the run browser, or leave the run."""
    st.caption(f"Image {image_id} of run **{run_name}**: the run's model and score settings.")
    back, leave = st.columns(2)
    if back.button("Back to the run", icon=":material/arrow_back:", key="run_back"):
        links.reopen(links.ViewState(page="runs", run=run_name, image_id=image_id))
    if leave.button("Leave the run", key="run_leave"):
        links.reopen(links.ViewState())
