"""The pseudo-mask last mile, in one place: score maps (+ dense CRF) to label ids, 255 where unsure.

:func:`pseudo_mask` is what the batch pipeline's workers, the app's predictions tab and notebook 02 call::

    maps = compute_scores(model, image, labels, ScoreSettings(method=...))   # (K + 1, H, W) scores
    mask = pseudo_mask(image, maps, CRFParams())                             # dense CRF, confidence rule
    mask.labels()                                                            # (H, W) uint8 label ids, 255 unsure

Without CRF parameters the mask is the arg-max of the scores (ties go to the background). With them, the dense CRF
refines the scores and pixels whose refined probability is below ``CRFParams.confidence`` (when set) become 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from glmix_viz.crf import IGNORE_INDEX, CRFParams, confident_labels, dense_crf

__all__ = ["IGNORE_INDEX", "PseudoMask", "channels_to_labels", "pseudo_mask"]


def channels_to_labels(channels: np.ndarray, class_indices: np.ndarray, *, fallback_to_channels: bool = False
                       ) -> np.ndarray:
    """Channel indices (255 = unsure) to label ids, as uint8 for a palette PNG.

    Args:
        channels: ``(H, W)`` uint8 channel indices into ``class_indices``; 255 where unsure.
        class_indices: ``(K + 1,)`` label id of every channel (0 background, model class ``c`` -> ``c + 1``).
        fallback_to_channels: when some label id does not fit a palette PNG (> 254, e.g. a 1000-class head), return
            the channel indices instead of raising.

    Returns:
        ``(H, W)`` uint8 label ids, 255 kept where unsure.
    """
    class_indices = np.asarray(class_indices)
    if class_indices.size and int(class_indices.max()) > IGNORE_INDEX:  # 255 itself: a channel written as unsure
        if fallback_to_channels:
            return np.asarray(channels, dtype=np.uint8)
        raise ValueError(f"label id {int(class_indices.max())} does not fit a palette PNG (ids 0..254; 255 = unsure)")
    lookup = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lookup[: len(class_indices)] = class_indices.astype(np.uint8)
    return lookup[np.asarray(channels, dtype=np.uint8)]


@dataclass
class PseudoMask:
    """A pseudo-mask of one image.

    Attributes:
        channels: ``(H, W)`` uint8 channel index (into ``class_indices``) of every pixel; 255 where unsure.
        before: ``(H, W)`` uint8 channel index before the CRF (the arg-max of the scores).
        class_indices: ``(K + 1,)`` label id of every channel (0 background, model class ``c`` -> ``c + 1``).
        refined: ``(K + 1, H, W)`` float32 probabilities after the dense CRF, or ``None`` without CRF.
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


def pseudo_mask(image: np.ndarray, maps: Any, crf: Optional[CRFParams] = None) -> PseudoMask:
    """Score maps of an image (and optionally the dense CRF) to a pseudo-mask.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image (a read-only array is fine).
        maps: the image's :class:`~glmix_viz.pseudo.scores.ScoreMaps` (``scores`` ``(K + 1, H, W)``, background
            first, and ``class_indices``).
        crf: dense CRF parameters (:class:`~glmix_viz.crf.CRFParams`; its ``confidence`` marks unsure pixels
            255), or ``None`` for the arg-max of the scores.

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
        refined = dense_crf(image, scores, crf)
        channels = confident_labels(refined, crf.confidence)
    return PseudoMask(channels, before, np.asarray(maps.class_indices), refined, getattr(maps, "settings", None))
