"""Data: the PASCAL VOC layout reader, class list and palette, and the synthetic shapes generator.

Nothing here imports torch; OpenCV is imported only when shapes are drawn.
"""

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
    IGNORE_INDEX,
    VOC_CLASSES,
    VOCDataset,
    VOCObject,
    VOCSample,
    find_voc_root,
    label_to_pil,
    load_label_png,
    palette_bytes,
    read_cls_labels,
    voc_palette,
)

__all__ = [
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
