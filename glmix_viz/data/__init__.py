"""Data: one :class:`~glmix_viz.data.base.Split` protocol, the readers that implement it (VOC, COCO, plain image
folder, segmentation folder, labelled folder), :func:`~glmix_viz.data.registry.open_split` that chooses among them,
and the synthetic shapes generator.

The label conventions (ignore value, palette, label PNGs) are :mod:`glmix_viz.labels`, re-exported here.
"""

from glmix_viz.data.base import Split, object_ids, object_names
from glmix_viz.data.registry import DATASETS, open_split
from glmix_viz.data.shapes import (
    DEFAULT_SHAPE_CLASSES,
    SHAPE_CLASSES,
    TEXTURES,
    ShapeObject,
    ShapesConfig,
    ShapesImage,
    make_shapes,
    render_shapes_image,
)
from glmix_viz.data.voc import (
    VOC_CLASSES,
    VOCDataset,
    VOCObject,
    VOCSample,
    find_voc_root,
    read_cls_labels,
)
from glmix_viz.labels import IGNORE_INDEX, label_to_pil, load_label_png, palette_bytes, voc_palette

__all__ = [
    "DATASETS",
    "Split",
    "object_ids",
    "object_names",
    "open_split",
    "DEFAULT_SHAPE_CLASSES",
    "IGNORE_INDEX",
    "SHAPE_CLASSES",
    "TEXTURES",
    "VOC_CLASSES",
    "ShapeObject",
    "ShapesConfig",
    "ShapesImage",
    "VOCDataset",
    "VOCObject",
    "VOCSample",
    "find_voc_root",
    "label_to_pil",
    "load_label_png",
    "make_shapes",
    "palette_bytes",
    "read_cls_labels",
    "render_shapes_image",
    "voc_palette",
]
