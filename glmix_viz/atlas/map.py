"""The 2-D map of a block's slot features (the atlas's PCA of a uniform sample of regions), a Plotly scatter coloured
by concept or by class, with the image, slot, concept and class of every point on hover."""

from __future__ import annotations

from typing import Optional

import numpy as np
import plotly.graph_objects as go

from glmix_viz.atlas.read import Atlas
from glmix_viz.viz import slot_palette

__all__ = ["COLOR_BY", "atlas_map_figure"]

COLOR_BY = ("concept", "class")


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def atlas_map_figure(atlas: Atlas, block: str, color_by: str = "concept", *,
                     marked: Optional[np.ndarray] = None, height: int = 460) -> go.Figure:
    """One trace per concept (or class), points at their PCA coordinates; hover names image, slot, concept, class.

    Args:
        atlas: the atlas.
        block: one of ``atlas.block_names``.
        color_by: ``"concept"`` or ``"class"`` (``"class"`` needs labels).
        marked: optional ``(S, 2)`` map coordinates to draw as crosses (e.g. the slots of the image on screen).
        height: figure height in pixels.
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    arrays = atlas.arrays(block)
    xy = arrays["map_xy"]
    concept = arrays.get("map_concept", np.zeros(0, int))
    label = arrays.get("map_label", np.zeros(0, int))
    image = arrays.get("map_image", np.zeros(0, int))
    slot = arrays.get("map_slot", np.zeros(0, int))
    names = atlas.class_names or []
    if color_by == "class" and not names:
        raise ValueError(f"{atlas.folder}: the atlas has no class labels to colour by")
    groups = concept if color_by == "concept" else label
    palette = slot_palette(max(int(groups.max(initial=0)) + 1, 1))
    ids = atlas.images["ids"]
    figure = go.Figure()
    for value in np.unique(groups):
        chosen = np.flatnonzero(groups == value)
        title = (f"{atlas.concept_noun} {value}" if color_by == "concept" else
                 (names[value] if 0 <= value < len(names) else "no label"))
        hover = [f"{ids[image[i]]}<br>slot {slot[i]} · {atlas.concept_noun} {concept[i]}"
                 + (f" · {names[label[i]]}" if 0 <= label[i] < len(names) else "") for i in chosen]
        figure.add_trace(go.Scattergl(x=xy[chosen, 0], y=xy[chosen, 1], mode="markers", name=title, text=hover,
                                      customdata=np.stack([image[chosen], slot[chosen]], axis=1),
                                      hovertemplate="%{text}<extra></extra>",
                                      marker={"size": 5, "opacity": 0.7, "color": _hex(palette[max(int(value), 0)])}))
    if marked is not None and len(marked):
        figure.add_trace(go.Scatter(x=marked[:, 0], y=marked[:, 1], mode="markers+text", name="this image",
                                    text=[str(s) for s in range(len(marked))], textposition="top center",
                                    marker={"symbol": "x", "size": 11, "color": "black"},
                                    hovertemplate="slot %{text} of this image<extra></extra>"))
    figure.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         title=f"{block}: slot features, PCA (coloured by {color_by})",
                         xaxis_title="PC 1 of unit-length slot features (no unit)",
                         yaxis_title="PC 2 (no unit)", legend={"itemsizing": "constant"})
    return figure
