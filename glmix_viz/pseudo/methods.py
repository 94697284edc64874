"""The built-in score-map methods, each one registered function (:func:`~glmix_viz.pseudo.registry.register_method`).

* ``cam`` - the classic class activation map (Zhou et al. 2016): the classifier's weights dotted with the final
  feature map at every position, ReLU. The reference baseline.
* ``slic_cam`` - training-free refinement: the CAM averaged within SLIC colour superpixels of the image
  (``skimage.segmentation.slic``), so evidence follows colour edges. A baseline.
* ``slot_pool`` - the GLMix grouping as a soft region prior. For each probed GLMix block (pixel grid h_b x w_b with
  S slots), the CAM is resized to the block's grid; every slot pools it with its clustering weights (softmax of the
  logits over pixels: each slot a distribution over pixels) and every pixel reads it back with its dispatch weights
  (softmax over slots). Per block that is one step of a random walk over the pixel-pixel affinity ``D^T C`` the
  block itself uses to mix features.
* ``slot_vote`` - hard grouping: every pixel joins its arg-max slot; a slot's value is the mean CAM of its pixels.
* ``slot_walk`` - several steps (option ``steps``) of the same random walk ``v <- D^T C v``: evidence spreads further
  within groups; ``slot_pool`` is the one-step case. The affinity is never formed (it would be L x L); each step costs
  two (S x L) products.

Slot methods take option ``sharpen`` (multiplies the block's logits before both softmaxes: > 1 makes the grouping
harder, which helps when a trained block's temperature has drifted towards uniform assignments), and min-max
normalise each block's map per class and view (see :data:`~glmix_viz.pseudo.evidence.SLOT_MIN_CONTRAST`) before the
blocks are averaged.

Background thresholds and ``measured`` mIoUs (percent, without / with the dense CRF) are those of
``bench/wsss_shapes.py`` on the bundled demo model (tuning split seed 2001, evaluation split seed 2002;
experiments/results/wsss_shapes_demo.json): the slot methods' maps are flatter than CAM's and want a higher threshold.
A starting point: tune on your data.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from glmix_viz.models.cam import class_activation_maps
from glmix_viz.pseudo.evidence import (
    SLOT_MIN_CONTRAST,
    minmax_normalize,
    slot_pooled_evidence,
    slot_voted_evidence,
    superpixel_average,
)
from glmix_viz.pseudo.registry import MapContext, register_method

__all__: List[str] = []  # the methods are reached through glmix_viz.pseudo.METHODS

Pool = Callable[[torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor]


def _slot_maps(context: MapContext, pool: Pool) -> List[torch.Tensor]:
    """One ``(N, K, h_b, w_b)`` map per probed block: the CAM pooled on the block's grid, min-max normalised."""
    cams = class_activation_maps(context.model, context.features, context.classes)
    sharpen = float(context.options.get("sharpen", 1.0))
    maps = []
    for record in context.records.values():
        height, width = record.size
        evidence = F.interpolate(cams, size=(height, width), mode="bilinear", align_corners=False).clamp_min(0)
        logits = record.logits.to(cams.dtype).flatten(2) * sharpen
        pooled = pool(evidence.flatten(2), logits, context.options).view_as(evidence)
        maps.append(minmax_normalize(pooled, min_contrast=SLOT_MIN_CONTRAST))
    return maps


def _slic_postprocess(image: np.ndarray, maps: np.ndarray, options: Mapping[str, Any]) -> np.ndarray:
    from skimage.segmentation import slic  # deferred: it loads scipy (about 1 s) and only slic_cam needs it

    segments = slic(
        image, n_segments=int(options["segments"]), compactness=float(options["compactness"]), start_label=0,
        channel_axis=-1,
    )
    return superpixel_average(maps, segments)


@register_method("cam", description="classic CAM of the final feature map (baseline)", bg_threshold=0.65,
                 baseline=True, measured={"miou": 41.4, "miou_crf": 49.6})
def cam(context: MapContext) -> List[torch.Tensor]:
    return [class_activation_maps(context.model, context.features, context.classes)]


@register_method("slic_cam", description="CAM averaged within SLIC colour superpixels (training-free)",
                 bg_threshold=0.80, baseline=True, options={"segments": 100, "compactness": 10.0},
                 search_space={"segments": (50, 100, 200)}, postprocess=_slic_postprocess,
                 measured={"miou": 41.2, "miou_crf": 48.7})
def slic_cam(context: MapContext) -> List[torch.Tensor]:
    return [class_activation_maps(context.model, context.features, context.classes)]


@register_method("slot_pool", description="CAM pooled in each GLMix block's soft slots and dispatched back; mean "
                 "over blocks", bg_threshold=0.75, uses_probe=True, options={"sharpen": 1.0},
                 search_space={"blocks": ("all", "first", "early"), "sharpen": (1.0, 2.0)},
                 measured={"miou": 63.3, "miou_crf": 70.4})
def slot_pool(context: MapContext) -> List[torch.Tensor]:
    return _slot_maps(context, lambda evidence, logits, options: slot_pooled_evidence(evidence, logits, steps=1))


@register_method("slot_vote", description="mean CAM of each pixel's arg-max slot; mean over blocks",
                 bg_threshold=0.70, uses_probe=True, options={"sharpen": 1.0},
                 search_space={"blocks": ("all", "first", "early")}, measured={"miou": 60.9, "miou_crf": 69.3})
def slot_vote(context: MapContext) -> List[torch.Tensor]:
    return _slot_maps(context, lambda evidence, logits, options: slot_voted_evidence(evidence, logits))


@register_method("slot_walk", description="random walk of the CAM over the slot affinity D^T C for several steps; "
                 "mean over blocks", bg_threshold=0.75, uses_probe=True, options={"sharpen": 1.0, "steps": 3},
                 search_space={"blocks": ("all", "early"), "steps": (2, 3), "sharpen": (1.0, 2.0)},
                 measured={"miou": 61.5, "miou_crf": 69.4})
def slot_walk(context: MapContext) -> List[torch.Tensor]:
    return _slot_maps(context, lambda evidence, logits, options: slot_pooled_evidence(
        evidence, logits, steps=int(options["steps"])))
