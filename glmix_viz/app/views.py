"""The explorer's views, in tab order: the one place where a view is plugged in.

Each view is a module of :mod:`glmix_viz.app.tabs` exporting ``VIEW`` (:class:`glmix_viz.app.page.View`: title,
the slug that names it in a link, and ``draw(page)``). To add one, write the module and add its ``VIEW`` here.
"""

from __future__ import annotations

from typing import Tuple

from glmix_viz.app.page import View
from glmix_viz.app.tabs import across_blocks, compare, downloads, groupings, predictions, slot_pixel

VIEWS: Tuple[View, ...] = (
    groupings.VIEW,
    across_blocks.VIEW,
    slot_pixel.VIEW,
    predictions.VIEW,
    downloads.VIEW,
    compare.VIEW,
)
"""The explorer's tabs. The atlas is a page of its own (:func:`glmix_viz.app.main.atlas_page`)."""


def view_by_slug(slug: str) -> View | None:
    """The view a link's ``tab=`` names, else None."""
    return next((view for view in VIEWS if view.slug == slug), None)
