"""The second stage of weak supervision: a segmentation network on GLNet features, trained on pseudo-masks.

* :mod:`glmix_viz.segment.model`: the smp segmenter on a GLNet encoder, its checkpoints, the backbone reader.
* :mod:`glmix_viz.segment.data`: training pairs (image, label PNG), checked and augmented.
* :mod:`glmix_viz.segment.train`: the training loop (``glmix-viz segment-train``).
* :mod:`glmix_viz.segment.predict`: inference and the batch job (``glmix-viz segment``).
"""

from glmix_viz.segment.model import (
    DECODERS,
    SEGMENTER_FORMAT,
    backbone_of,
    build_segmenter,
    load_segmenter,
    save_segmenter,
)
from glmix_viz.segment.predict import explore_segmenter, predict_labels, predict_probs, run_segment

__all__ = [
    "DECODERS",
    "SEGMENTER_FORMAT",
    "backbone_of",
    "build_segmenter",
    "explore_segmenter",
    "load_segmenter",
    "predict_labels",
    "predict_probs",
    "run_segment",
    "save_segmenter",
]
