"""GLNet models. Importing this package registers every variant with timm (``timm.create_model("glnet_stl")``)."""

from glmix_viz.models.glnet import (
    RECIPE_DROP_PATH,
    OFFICIAL_VARIANTS,
    VARIANT_ARGS,
    GLMixBlock,
    GLNet,
    GLNetTokenLabel,
    GroupingTap,
    checkpoint_filter_fn,
)

__all__ = [
    "RECIPE_DROP_PATH",
    "OFFICIAL_VARIANTS",
    "VARIANT_ARGS",
    "GLMixBlock",
    "GLNet",
    "GLNetTokenLabel",
    "GroupingTap",
    "checkpoint_filter_fn",
]
