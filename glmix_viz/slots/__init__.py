"""Slots of one image: what every GLMix block groups, how much each slot holds, and resizing of its maps.

* :mod:`glmix_viz.slots.explore` - one image through a GLNet, kept whole for browsing (:func:`explore_image`), and
  the questions the explorer and the notebooks ask of it (slot areas, class evidence, flow, one pixel's slots).
* :mod:`glmix_viz.slots.usage` - dispatch entropy, slots used and effective slots of one block (:func:`slot_usage`).
* :mod:`glmix_viz.slots.resize` - nearest resizing of label maps and bilinear resizing of score maps.
* :mod:`glmix_viz.slots.medoids` - representative slots of a block (k-medoids on their maps).
* :mod:`glmix_viz.slots.interventions` - remove slots of one block and run the rest of the network
  (:func:`intervene`); the change of every class probability when each slot is removed (:func:`slot_effects`).
* :mod:`glmix_viz.slots.compare` - two models on one image: blocks paired by stage, agreement (ARI), slots matched
  by overlap, the change in class predictions (:func:`compare_groupings`).

Numeric only: nothing here imports a plotting or app library.
"""

from glmix_viz.slots.explore import Exploration, Prediction, explore_image, slot_areas, top_predictions
from glmix_viz.slots.medoids import representative_slots
from glmix_viz.slots.resize import slot_labels, upsample_labels, upsample_maps
from glmix_viz.slots.usage import SlotUsage, slot_usage
from glmix_viz.slots.compare import GroupingComparison, compare_explorations, compare_groupings  # noqa: E402
from glmix_viz.slots.interventions import (  # noqa: E402
    InterventionError,
    InterventionResult,
    intervene,
    slot_effect_map,
    slot_effects,
)

__all__ = [
    "Exploration",
    "InterventionError",
    "InterventionResult",
    "GroupingComparison",
    "compare_explorations",
    "compare_groupings",
    "Prediction",
    "SlotUsage",
    "explore_image",
    "intervene",
    "representative_slots",
    "slot_areas",
    "slot_effect_map",
    "slot_effects",
    "slot_labels",
    "slot_usage",
    "top_predictions",
    "upsample_labels",
    "upsample_maps",
]
