"""GLNet models. Importing this package registers every variant with timm (``timm.create_model("glnet_stl")``).

* ``registry`` - the variants as data (:class:`VariantSpec` by name in :data:`VARIANTS`);
* ``glnet`` - the model (blocks, ``GLNet``, the timm-registered functions);
* ``tap`` - the grouping tap and the contract of what clustering blocks show to tools;
* ``cam`` - class activation maps through the classifier;
* ``loading`` - checkpoints, and which model a tool uses (:func:`resolve_model`).
"""

from glmix_viz.models.cam import class_activation_maps
from glmix_viz.models.glnet import (
    OFFICIAL_VARIANTS,
    RECIPE_DROP_PATH,
    VARIANT_ARGS,
    GLMixBlock,
    GLNet,
    GLNetTokenLabel,
    checkpoint_filter_fn,
)
from glmix_viz.models.registry import VARIANTS, VariantSpec, get_variant, official_variants, register_variant
from glmix_viz.models.tap import GroupingTap, TapInfo, grouping_taps, tap_infos

__all__ = [
    "OFFICIAL_VARIANTS",
    "RECIPE_DROP_PATH",
    "VARIANTS",
    "VARIANT_ARGS",
    "GLMixBlock",
    "GLNet",
    "GLNetTokenLabel",
    "GroupingTap",
    "TapInfo",
    "VariantSpec",
    "checkpoint_filter_fn",
    "class_activation_maps",
    "get_variant",
    "grouping_taps",
    "official_variants",
    "register_variant",
    "tap_infos",
]
