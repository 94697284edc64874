"""GLNet models. Importing this package registers every variant with timm (``timm.create_model("glnet_stl")``).

* ``registry`` - the variants as data (:class:`VariantSpec` by name in :data:`VARIANTS`);
* ``glnet`` - the model (blocks, ``GLNet``, the timm-registered functions);
* ``tap`` - the grouping tap and the contract of what clustering blocks show to tools;
* ``cam`` - class activation maps through the classifier;
* ``loading`` - GLNet checkpoints: :func:`~glmix_viz.models.loading.load_model` and ``save_checkpoint``;
* ``info`` - facts about a built model (classes, input size, :class:`~glmix_viz.models.info.ModelInfo`).

Which model a tool uses, and checkpoints of any kind, are one level up in :mod:`glmix_viz.open`.
"""

from glmix_viz.models.cam import class_activation_maps
from glmix_viz.models.glnet import (
    GLMixBlock,
    GLNet,
    GLNetTokenLabel,
    checkpoint_filter_fn,
)
from glmix_viz.models.registry import VARIANTS, VariantSpec, get_variant, official_variants, register_variant
from glmix_viz.models.tap import GroupingTap, TapInfo, grouping_taps, tap_infos

__all__ = [
    "VARIANTS",
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
