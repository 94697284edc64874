"""What every view of the explorer is given: the :class:`Page` (model, image, network result, block, display), and
what a view is (:class:`View`); :mod:`glmix_viz.app.views` lists the views.

A new view is a module of :mod:`glmix_viz.app.tabs` with a ``VIEW = View(title, slug, draw)``, where
``draw(page)`` draws it from the page alone, plus one line in :data:`glmix_viz.app.views.VIEWS`. A view keeps its
own widgets' state under keys that name the model and image they belong to (:meth:`Page.key`), and never reads
another view's state: what two views share is computed from the page (and cached in :mod:`glmix_viz.app.data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import streamlit as st

from glmix_viz.app.data import LoadedImage, LoadedModel
from glmix_viz.app.links import ViewState
from glmix_viz.pictures import SOFT_MAP_KINDS
from glmix_viz.slots.explore import Exploration
from glmix_viz.viz import COLOR_SCALES

__all__ = ["COLOR_SCALES", "Display", "Page", "SOFT_MAP_KINDS", "View", "remember", "remembered"]


@dataclass(frozen=True)
class Display:
    """Display settings: changing them redraws pictures and never reruns the network.

    Attributes:
        opacity: weight of the colours over the image, in [0, 1].
        boundaries: draw the borders between slots.
        soft_map_kind: a key of :data:`SOFT_MAP_KINDS`.
        color_scale: ``"shared"`` (maps shown together on one colour scale) or ``"own"`` (each map on its own), a key
            of :data:`glmix_viz.viz.COLOR_SCALES`.
    """

    opacity: float = 0.55
    boundaries: bool = True
    soft_map_kind: str = "dispatch"
    color_scale: str = "shared"


@dataclass(frozen=True)
class Page:
    """One view's inputs: what the sidebar chose and the network result of it.

    Attributes:
        model: the model (its ``key`` names the weights and device).
        image: the image (its ``key`` names the pixels).
        resolution: the network input's longer side.
        exploration: the network result of ``model`` on ``image`` at ``resolution``.
        block: the GLMix block chosen.
        display: the display settings.
        benchmark: the block that groups best on the model's benchmark (:func:`glmix_viz.app.data.demo_benchmark`),
            or None for a model without one.
        link: what the page's link asked for when it was opened (:class:`glmix_viz.app.links.ViewState`), when it
            names this model and image: the first values of the views' widgets (empty without a link).
        run_settings: the :class:`~glmix_viz.pseudo.ScoreSettings` of the run an image was opened from (the run
            browser, :mod:`glmix_viz.app.runs`): the pseudo-mask of that method keeps its blocks, scales and options.
    """

    model: LoadedModel
    image: LoadedImage
    resolution: int
    exploration: Exploration
    block: str
    display: Display = field(default_factory=Display)
    benchmark: Optional[Mapping[str, Any]] = None
    link: ViewState = field(default_factory=ViewState)
    run_settings: Any = None

    def key(self, name: str, *, image: bool = True) -> str:
        """A widget key of state that belongs to this model (and image): ``"name::<model key>::<image key>"``."""
        return f"{name}::{self.model.key}::{self.image.key}" if image else f"{name}::{self.model.key}"


@dataclass(frozen=True)
class View:
    """One tab of the explorer.

    Attributes:
        title: the tab's title.
        slug: the tab's name in the page's link (``?tab=slug``): letters, digits and ``-`` only.
        draw: draws the view from the page.
    """

    title: str
    slug: str
    draw: Callable[[Page], None]


def remembered(key: str, default: Any) -> Any:
    """The value last :func:`remember`-ed under ``key`` in this session, else ``default``.

    Streamlit forgets a widget's value when a run does not draw it (a closed tab, another method's slider); a view
    that should find it again passes ``value=remembered(key, default)`` and calls :func:`remember` after the widget.
    """
    return st.session_state.get(f"remembered::{key}", default)


def remember(key: str, value: Any) -> Any:
    """Keep ``value`` under ``key`` for :func:`remembered`; returns it."""
    st.session_state[f"remembered::{key}"] = value
    return value
