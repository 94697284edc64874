"""The pseudo-mask last mile, in one place: score maps (+ a refinement) to label ids, 255 where unsure.

:func:`pseudo_mask` is what the batch pipeline's workers, the app's predictions tab and notebook 02 call::

    maps = compute_scores(model, image, labels, ScoreSettings(method=...))   # (K + 1, H, W) scores
    mask = pseudo_mask(image, maps, CRFParams())                             # dense CRF (PARParams(): PAR)
    mask.labels()                                                            # (H, W) uint8 label ids, 255 unsure

Without refinement parameters the mask is the arg-max of the scores (ties go to the background). With them, the
refinement of their kind (:mod:`glmix_viz.refine`: :class:`~glmix_viz.crf.CRFParams` the dense CRF,
:class:`~glmix_viz.refine.PARParams` PAR) refines the scores, and pixels whose refined probability is below
the parameters' ``confidence`` (when set) become 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from glmix_viz.crf import IGNORE_INDEX, confident_labels
from glmix_viz.labels import channels_to_labels
from glmix_viz.refine import RefineParams, method_of, refine

__all__ = ["IGNORE_INDEX", "PseudoMask", "channels_to_labels", "pseudo_mask"]


@dataclass
class PseudoMask:
    """A pseudo-mask of one image.

    Attributes:
        channels: ``(H, W)`` uint8 channel index (into ``class_indices``) of every pixel; 255 where unsure.
        before: ``(H, W)`` uint8 channel index before the CRF (the arg-max of the scores).
        class_indices: ``(K + 1,)`` label id of every channel (0 background, model class ``c`` -> ``c + 1``).
        refined: ``(K + 1, H, W)`` float32 probabilities after the refinement, or ``None`` without one.
        settings: the score settings of the maps it was made from (``None`` when unknown).
    """

    channels: np.ndarray
    before: np.ndarray
    class_indices: np.ndarray
    refined: Optional[np.ndarray] = None
    settings: Any = None

    def labels(self, *, fallback_to_channels: bool = False) -> np.ndarray:
        """``(H, W)`` uint8 label ids, 255 where unsure (see :func:`channels_to_labels`)."""
        return channels_to_labels(self.channels, self.class_indices, fallback_to_channels=fallback_to_channels)

    def labels_before(self, *, fallback_to_channels: bool = False) -> np.ndarray:
        """``(H, W)`` uint8 label ids of the arg-max before the CRF."""
        return channels_to_labels(self.before, self.class_indices, fallback_to_channels=fallback_to_channels)


def pseudo_mask(image: np.ndarray, maps: Any, crf: RefineParams = None) -> PseudoMask:
    """Score maps of an image (and optionally a refinement: dense CRF or PAR) to a pseudo-mask.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image (a read-only array is fine).
        maps: the image's :class:`~glmix_viz.pseudo.scores.ScoreMaps` (``scores`` ``(K + 1, H, W)``, background
            first, and ``class_indices``).
        crf: the refinement's parameters (:class:`~glmix_viz.crf.CRFParams` for the dense CRF,
            :class:`~glmix_viz.refine.PARParams` for PAR; their ``confidence`` marks unsure pixels 255), or
            ``None`` for the arg-max of the scores. (The name stays ``crf`` for the callers written before PAR.)

    Returns:
        :class:`PseudoMask`.
    """
    scores = np.asarray(maps.scores, dtype=np.float32)
    if scores.shape[0] > IGNORE_INDEX:
        raise ValueError(f"{scores.shape[0]} score channels: a pseudo-mask holds at most {IGNORE_INDEX}")
    before = scores.argmax(axis=0).astype(np.uint8)
    refined = None
    channels = before
    if crf is not None:
        refined = refine(method_of(crf), image, scores, crf)
        channels = confident_labels(refined, crf.confidence)
    return PseudoMask(channels, before, np.asarray(maps.class_indices), refined, getattr(maps, "settings", None))
