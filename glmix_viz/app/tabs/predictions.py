"""The Predictions & pseudo-mask tab: the classifier's top classes, one class's score map by every method, and the
pseudo-mask of chosen settings before and after its refinement, the dense CRF or PAR (a segmenter checkpoint: its own
prediction).

Its state belongs to the model and image shown: the chosen classes are keyed by both, every method has its own
background threshold (keyed by method and rule, starting at the method's own), and nothing here is read by another
tab. Moving the threshold replaces the background channel of cached class maps; the network is not rerun.
"""

from __future__ import annotations

import dataclasses

from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd
import streamlit as st

from glmix_viz.app import data, links
from glmix_viz.app.page import Display, Page, View, remember, remembered
from glmix_viz.labels import label_to_pil, voc_palette
from glmix_viz.pictures import mask_label_ids, png_bytes, pseudo_mask_legend, pseudo_mask_overlay
from glmix_viz.pseudo import METHODS, ScoreSettings, default_method
from glmix_viz.crf import CRFParams
from glmix_viz.refine import REFINEMENTS, PARParams, RefineParams, method_of
from glmix_viz.slots.explore import Exploration, top_predictions
from glmix_viz.viz import heatmap_overlay, label_legend, map_colorbar, overlay, scale_caption, value_ranges

TOP_K = 5
BACKGROUND_RANGES = {"threshold": (0.0, 1.0), "power": (0.5, 16.0)}
CRF_SLIDERS = (  # (field of CRFParams, label, low, high), in three columns
    ("gaussian_sxy", "Smoothness sxy", 1.0, 20.0), ("gaussian_compat", "Smoothness weight", 0.0, 20.0),
    ("bilateral_sxy", "Appearance sxy", 5.0, 200.0), ("bilateral_srgb", "Appearance srgb", 1.0, 50.0),
    ("bilateral_compat", "Appearance weight", 0.0, 30.0), ("iterations", "Iterations", 0, 20),
)
PAR_SLIDERS = (  # (field of PARParams, label, low, high), in three columns
    ("iterations", "Iterations", 0, 30), ("kernel_width", "Kernel width w1", 0.05, 2.0),
    ("position_weight", "Position weight w2", 0.0, 1.0), ("scale", "Working scale", 0.25, 1.0),
)
REFINE_LABELS = {"crf": "dense CRF", "par": "PAR (pixel-adaptive refinement)", "none": "none (arg-max)"}


def class_label(exploration: Exploration, index: int) -> str:
    return f"{exploration.class_names[index]} ({exploration.probabilities[index]:.1%})"


def predictions_table(exploration: Exploration) -> None:
    """The top five predictions (or every class of a model with fewer) with class names and probabilities."""
    predictions = top_predictions(exploration.probabilities, exploration.class_names,
                                  k=min(TOP_K, len(exploration.class_names)))
    table = pd.DataFrame({"rank": range(1, len(predictions) + 1), "class": [p.name for p in predictions],
                          "index": [p.index for p in predictions], "probability": [p.probability for p in predictions]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "probability": st.column_config.ProgressColumn("probability", format="%.3f", min_value=0.0, max_value=1.0)})
    kind = ("multi-label: a sigmoid per class, each image can hold several" if exploration.multi_label
            else "softmax over its classes")
    fewer = f" (all {len(predictions)}: the model has {len(predictions)} classes)" \
        if len(exploration.class_names) < TOP_K else ""
    st.caption(f"Top-{len(predictions)} predictions of the classifier{fewer} ({kind}); probability 0-1.")


def choose_classes(page: Page) -> Tuple[Tuple[int, ...], int, bool]:
    """The image's classes (first: its known labels or every class above 0.5), the class to map, flip TTA."""
    exploration = page.exploration
    key = page.key("pseudo_classes")
    classes = remember(key, st.multiselect(
        "Classes in the image (image-level labels for the class maps)", list(range(len(exploration.class_names))),
        default=remembered(key, list(data.default_classes(exploration, page.image))),
        format_func=lambda index: class_label(exploration, index), key=key))
    if not classes:
        return (), -1, False
    chosen = st.selectbox("Class to map", classes, format_func=lambda index: exploration.class_names[index],
                          key=page.key("pseudo_class"))
    flip = st.checkbox("Flip TTA", value=True, key="pseudo_flip", help="average with the mirrored image")
    return tuple(sorted(classes)), int(chosen), flip


def score_map_grid(page: Page, chosen: int, classes: Tuple[int, ...], flip: bool) -> None:
    """One class's map by every registered method that is not slow (slow ones: in the pseudo-mask's selector)."""
    maps = {}
    for method in (name for name in data.method_names() if not METHODS[name].slow):
        settings = ScoreSettings(method=method, flip=flip, input_size=page.resolution)
        scores = data.class_maps(page.model, page.image, settings, classes)
        maps[method] = scores.scores[list(scores.class_indices).index(chosen + 1)]
    score_maps_row(page.exploration, maps, {method: METHODS[method].description for method in maps}, page.display)
    slow = [name for name in data.method_names() if METHODS[name].slow]
    if slow:
        st.caption(f"Not shown here (slow: many network passes per image): {', '.join(slow)}; choose them below.")


def score_maps_row(exploration: Exploration, maps: Dict[str, np.ndarray], descriptions: Dict[str, str],
                   display: Display, per_row: int = 6) -> None:
    """One class's score map by each method side by side (rows of ``per_row``), on the display's colour scale."""
    ranges = dict(zip(maps, value_ranges(list(maps.values()), display.color_scale)))
    names = list(maps)
    for start in range(0, len(names), per_row):
        for column, method in zip(st.columns(per_row), names[start:start + per_row]):
            low, high = ranges[method]
            picture = heatmap_overlay(exploration.image, maps[method], alpha=max(display.opacity, 0.3),
                                      value_range=(low, high))
            column.image(picture, width="stretch",
                         caption=f"{method}: {descriptions[method]} (jet: blue {low:.3g}, red {high:.3g}).")
    st.image(map_colorbar(list(maps.values()), display.color_scale, colormap="jet",
                          quantity="class score (max-normalised, 0-1)"),
             caption=f"Score maps: {scale_caption(display.color_scale)}.")


def choose_background(method: str) -> Tuple[str, float]:
    """The background rule and its parameter for ``method``: each method (and rule) keeps its own, starting at the
    method's own threshold (:class:`ScoreSettings` fills it from the registry)."""
    col_rule, col_param = st.columns([1, 1])
    rules = list(BACKGROUND_RANGES)
    rule = col_rule.radio("Background rule", rules, horizontal=True, key=f"bg_rule::{method}",
                          index=rules.index(remembered(f"bg_rule::{method}", "threshold")),
                          help="threshold: constant background score; power: (1 - max class score) ** alpha")
    key = f"bg_param::{method}::{rule}"
    own = float(ScoreSettings(method=method, bg_rule=rule).bg_param)
    param = col_param.slider("Background threshold" if rule == "threshold" else "Power alpha",
                             *BACKGROUND_RANGES[rule], value=remembered(key, own), key=key)
    remember(f"bg_rule::{method}", rule)
    return rule, float(remember(key, param))


def choose_crf() -> CRFParams:
    """The dense CRF's parameters (the library's defaults first)."""
    defaults = CRFParams()
    columns = st.columns(3)
    values = {name: columns[position // 2].slider(label, low, high, getattr(defaults, name), key=f"crf_{name}")
              for position, (name, label, low, high) in enumerate(CRF_SLIDERS)}
    return CRFParams(**values)


def choose_par() -> PARParams:
    """PAR's parameters (the published defaults first; dilations as a comma list)."""
    defaults = PARParams()
    columns = st.columns(3)
    values = {name: columns[position // 2].slider(label, low, high, getattr(defaults, name), key=f"par_{name}")
              for position, (name, label, low, high) in enumerate(PAR_SLIDERS)}
    text = columns[2].text_input("Dilations", ",".join(str(d) for d in defaults.dilations), key="par_dilations")
    try:
        return PARParams(dilations=tuple(int(part) for part in text.split(",") if part.strip()), **values)
    except ValueError as error:
        columns[2].warning(f"{error}; using the defaults")
        return PARParams(**values)


def choose_refinement() -> RefineParams:
    """The refinement (the library's default, the dense CRF, first) and its parameters."""
    name = st.radio("Refinement", REFINEMENTS, horizontal=True, key="pseudo_refine",
                    format_func=REFINE_LABELS.get,
                    help="dense CRF: pydensecrf, fully connected; PAR: local colour- and position-aware propagation "
                         "(ToCo/AFA), torch, fast")
    if name == "none":
        return None
    with st.expander("Dense CRF parameters" if name == "crf" else "PAR parameters"):
        return choose_crf() if name == "crf" else choose_par()


def choose_mask_request(page: Page, classes: Tuple[int, ...], flip: bool) -> data.MaskRequest:
    """Method (the library's default first), its background, the refinement: the request of the pseudo-mask shown."""
    methods = list(data.method_names())
    col_method, col_background = st.columns([1, 2])
    first = page.link.method if page.link.method in methods else default_method()
    if page.link.method is not None and page.link.method not in methods:
        links.refuse("method", page.link.method, f"is not a score-map method ({', '.join(methods)})",
                     f"opened {first} instead")
    method = col_method.selectbox("Method", methods, index=methods.index(first), key="pseudo_method")
    links.note(method=method)
    with col_background:
        rule, param = choose_background(method)
    crf = choose_refinement()
    score = ScoreSettings(method=method, bg_rule=rule, bg_param=param, flip=flip, input_size=page.resolution)
    if page.run_settings is not None and page.run_settings.method == method:  # the run's blocks, scales, options
        score = dataclasses.replace(page.run_settings, bg_rule=rule, bg_param=param, flip=flip,
                                    input_size=page.resolution)
    return data.MaskRequest(classes, score, crf)


def mask_pictures(page: Page, request: data.MaskRequest) -> None:
    """The pseudo-mask before and after the refinement, its legend, and its download."""
    mask = data.pseudo_mask(page.model, page.image, request)
    image, alpha = page.exploration.image, max(page.display.opacity, 0.3)
    col_before, col_after, col_legend = st.columns([1, 1, 0.5], gap="medium")
    col_before.image(pseudo_mask_overlay(image, mask.before, mask.class_indices, alpha=alpha), width="stretch",
                     caption=f"Before refinement: arg-max of the {request.method} scores and the background score "
                             f"({request.score.bg_rule} {request.score.bg_param:.2f}; background left uncoloured).")
    col_after.image(pseudo_mask_overlay(image, mask.channels, mask.class_indices, alpha=alpha), width="stretch",
                    caption=f"After {REFINE_LABELS[method_of(request.crf)]} (refined with the image's colours and "
                            "positions)." if request.crf is not None else "No refinement: the arg-max, as before.")
    col_legend.image(pseudo_mask_legend(mask.class_indices, page.exploration.class_names),
                     caption="Pseudo-mask labels (VOC palette).")
    col_legend.download_button("This pseudo-mask (palette PNG)",
                               png_bytes(label_to_pil(mask_label_ids(mask.channels, mask.class_indices))),
                               file_name="pseudo_mask.png", mime="image/png", on_click="ignore",
                               icon=":material/palette:", key=page.key("pseudo_mask_download"))


def segmenter_view(page: Page) -> None:
    """A segmenter checkpoint: its predicted mask beside the pseudo-mask of the bundled demo model (same classes)."""
    labels, names = data.segmenter_prediction(page.model, page.image)
    palette, alpha, image = voc_palette(256), max(page.display.opacity, 0.3), page.exploration.image
    col_pred, col_pseudo, col_legend = st.columns([1, 1, 0.5], gap="medium")
    col_pred.image(overlay(image, labels, palette=palette, alpha=alpha, mask=labels != 0), width="stretch",
                   caption="The segmenter's prediction (its encoder's groupings are in the other tabs).")
    demo = data.demo_model(str(next(page.model.model.parameters()).device))
    request = demo_request(demo, page) if ["background", *demo.class_names] == list(names) else None
    if request is None:
        col_pseudo.info("Pseudo-masks need a classifier of the segmenter's classes; the bundled demo model's differ.")
    else:
        mask = data.pseudo_mask(demo, page.image, request)
        col_pseudo.image(pseudo_mask_overlay(image, mask.channels, mask.class_indices, alpha=alpha), width="stretch",
                         caption=f"Pseudo-mask of the bundled demo model ({request.method} + CRF).")
    col_legend.image(label_legend(palette[: len(names)], names, column_width=170), caption="Labels (VOC palette).")


def demo_request(demo: data.LoadedModel, page: Page) -> Optional[data.MaskRequest]:
    """The default pseudo-mask request of the demo model on the page's image."""
    exploration = data.exploration(demo, page.image, page.resolution)
    return data.default_mask_request(exploration, page.image, page.resolution)


def draw(page: Page) -> None:
    """Top-5 predictions; score maps of a chosen class by every method; the pseudo-mask before / after the CRF."""
    if page.model.segmenter is not None:
        segmenter_view(page)
        return
    if page.exploration.logits.size == 0:
        st.info("This model has no classifier head: no predictions or class maps.")
        return
    left, right = st.columns([1.25, 2], gap="large")
    with left:
        predictions_table(page.exploration)
    with right:
        classes, chosen, flip = choose_classes(page)
    if not classes:
        right.warning("Choose at least one class.")
        return
    st.subheader(f"Score maps of '{page.exploration.class_names[chosen]}' by each method")
    score_map_grid(page, chosen, classes, flip)
    st.subheader("Pseudo-mask")
    mask_pictures(page, choose_mask_request(page, classes, flip))


VIEW = View("Predictions & pseudo-mask", "predictions", draw)
