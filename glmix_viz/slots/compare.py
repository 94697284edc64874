"""Two models side by side on one image: do their GLMix blocks group the same pixels, and how did the classes move?

:func:`compare_groupings` runs one image through two models (e.g. a fine-tuned model and the model it started from,
a segmenter's encoder and its classifier, a model and its untrained copy); :func:`compare_explorations` does the
comparison on two :class:`~glmix_viz.slots.explore.Exploration` s already made (the explorer caches those).

* Blocks are paired by stage and by order within the stage (the k-th GLMix block of stage s of one model with the
  k-th of stage s of the other), so models of other variants, slot counts or input sizes are compared where their
  blocks correspond; blocks without a partner are listed with the reason.
* Both hard groupings are brought to a common pixel grid (the image, its longer side at most ``max_side``) by nearest
  neighbour; their agreement is the adjusted Rand index over those pixels
  (:func:`glmix_viz.scoring.grouping.adjusted_rand_index`).
* Slots are matched across the two models by the Hungarian algorithm on their IoU (``linear_sum_assignment``); the
  second model's grouping is relabelled so that a matched slot carries its partner's index (and colour), and its
  unmatched slots take indices after the first model's slots.
* The class predictions are compared class by class when the two models share their class list.

Numeric only: the picture is :func:`glmix_viz.figures.comparison_figure`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from glmix_viz.slots.explore import Exploration, explore_image
from glmix_viz.slots.resize import upsample_labels

__all__ = [
    "BlockComparison",
    "ClassChange",
    "GroupingComparison",
    "block_stage_order",
    "compare_explorations",
    "compare_groupings",
    "match_blocks",
    "match_slots",
]

_STAGE_BLOCK = re.compile(r"(?:^|\.)stages\.(\d+)\.blocks\.(\d+)$")


@dataclass
class BlockComparison:
    """One pair of corresponding blocks.

    Attributes:
        block_a, block_b: the blocks' module paths in the two models.
        stage: their stage; order: their place among the GLMix blocks of the stage.
        labels_a: (H, W) int64 hard grouping of model A on the common grid (its slot indices).
        labels_b: (H, W) int64 hard grouping of model B, relabelled: a slot matched to A's slot s carries s, the
            others ``num_slots_a + j``.
        num_slots_a, num_slots_b: slots of each block.
        agreement: ARI of the two groupings over the grid's pixels.
        matches: (slot of A, slot of B, IoU) of every matched pair with IoU > 0, best first.
    """

    block_a: str
    block_b: str
    stage: int
    order: int
    labels_a: np.ndarray
    labels_b: np.ndarray
    num_slots_a: int
    num_slots_b: int
    agreement: float
    matches: List[Tuple[int, int, float]]

    @property
    def mean_matched_iou(self) -> float:
        """Mean IoU of the matched pairs (0 without any)."""
        return float(np.mean([iou for _, _, iou in self.matches])) if self.matches else 0.0


@dataclass(frozen=True)
class ClassChange:
    """One class's probability under both models (``b - a`` the change)."""

    name: str
    a: float
    b: float

    @property
    def change(self) -> float:
        return self.b - self.a


@dataclass
class GroupingComparison:
    """What :func:`compare_explorations` finds.

    Attributes:
        image: (H, W, 3) uint8 the common grid's picture (the image, resized when it is larger than ``max_side``).
        blocks: the corresponding block pairs, in network order.
        unmatched: block path (prefixed "A: " or "B: ") -> why it has no partner.
        classes: per class, both probabilities, largest change first (empty when the class lists differ).
        class_note: why the classes are not compared ("" when they are).
    """

    image: np.ndarray
    blocks: List[BlockComparison]
    unmatched: Dict[str, str] = field(default_factory=dict)
    classes: List[ClassChange] = field(default_factory=list)
    class_note: str = ""


def block_stage_order(names: Sequence[str]) -> Dict[str, Tuple[int, int]]:
    """``{path: (stage, order within the stage)}`` of GLMix block paths (``...stages.<s>.blocks.<i>``); paths of
    another form are left out."""
    found: Dict[str, Tuple[int, int]] = {}
    counts: Dict[int, int] = {}
    for name in names:
        match = _STAGE_BLOCK.search(name)
        if match is None:
            continue
        stage = int(match.group(1))
        found[name] = (stage, counts.get(stage, 0))
        counts[stage] = counts.get(stage, 0) + 1
    return found


def match_blocks(names_a: Sequence[str], names_b: Sequence[str]) -> Tuple[List[Tuple[str, str]], Dict[str, str]]:
    """Pair two models' GLMix blocks by stage and order within the stage.

    Returns:
        ``(pairs, unmatched)``: ``[(block of A, block of B), ...]`` in A's order, and ``{"A: path" or "B: path":
        reason}`` for every block left without a partner.
    """
    place_a, place_b = block_stage_order(names_a), block_stage_order(names_b)
    by_place_b = {place: name for name, place in place_b.items()}
    pairs, unmatched = [], {}
    for name in names_a:
        if name not in place_a:
            unmatched[f"A: {name}"] = "its path names no stage (expected '...stages.<s>.blocks.<i>')"
        elif place_a[name] in by_place_b:
            pairs.append((name, by_place_b[place_a[name]]))
        else:
            stage, order = place_a[name]
            unmatched[f"A: {name}"] = f"model B has no GLMix block number {order + 1} in stage {stage}"
    paired_b = {b for _, b in pairs}
    for name in names_b:
        if name not in place_b:
            unmatched[f"B: {name}"] = "its path names no stage (expected '...stages.<s>.blocks.<i>')"
        elif name not in paired_b:
            stage, order = place_b[name]
            unmatched[f"B: {name}"] = f"model A has no GLMix block number {order + 1} in stage {stage}"
    return pairs, unmatched


def match_slots(labels_a: np.ndarray, labels_b: np.ndarray,
                first_free: Optional[int] = None) -> Tuple[np.ndarray, List[Tuple[int, int, float]]]:
    """Match the slots of two groupings of the same pixels by IoU (Hungarian) and relabel the second.

    Args:
        labels_a, labels_b: (H, W) non-negative slot indices.
        first_free: the first index B's unmatched slots take (default ``labels_a.max() + 1``; A's slot count
            keeps the colours of a block the same whichever slots the image uses).

    Returns:
        ``(relabelled_b, matches)``: B's grouping with every matched slot renamed to its partner in A and the other
        slots to ``first_free + j`` (in order of their index); matches ``(slot a, slot b, IoU)``, IoU > 0, best
        first.
    """
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(labels_a, dtype=np.int64).reshape(-1)
    b = np.asarray(labels_b, dtype=np.int64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"the groupings differ in size: {np.shape(labels_a)} vs {np.shape(labels_b)}")
    rows, cols = int(a.max()) + 1, int(b.max()) + 1
    table = np.bincount(a * cols + b, minlength=rows * cols).reshape(rows, cols)
    union = table.sum(axis=1, keepdims=True) + table.sum(axis=0, keepdims=True) - table
    iou = table / np.maximum(union, 1)
    pick_a, pick_b = linear_sum_assignment(iou, maximize=True)
    rename = np.full(cols, -1, np.int64)
    matches = []
    for slot_a, slot_b in zip(pick_a, pick_b):
        if iou[slot_a, slot_b] > 0:
            rename[slot_b] = slot_a
            matches.append((int(slot_a), int(slot_b), float(iou[slot_a, slot_b])))
    free = np.flatnonzero((rename < 0) & (table.sum(axis=0) > 0))  # B's slots that occur and found no partner
    rename[free] = (rows if first_free is None else max(int(first_free), rows)) + np.arange(len(free))
    matches.sort(key=lambda match: -match[2])
    return rename[b].reshape(np.shape(labels_b)), matches


def _common_image(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    zoom = min(1.0, max_side / max(height, width))
    if zoom >= 1.0:
        return image
    from PIL import Image

    size = (max(1, round(width * zoom)), max(1, round(height * zoom)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _class_changes(a: Exploration, b: Exploration) -> Tuple[List[ClassChange], str]:
    if a.logits.size == 0 or b.logits.size == 0:
        which = "A" if a.logits.size == 0 else "B"
        return [], f"model {which} has no classifier (e.g. a segmenter's encoder): no class predictions to compare"
    if list(a.class_names) != list(b.class_names):
        return [], "the two models have different class lists: their predictions are not compared class by class"
    changes = [ClassChange(name, float(pa), float(pb))
               for name, pa, pb in zip(a.class_names, a.probabilities, b.probabilities)]
    return sorted(changes, key=lambda change: -abs(change.change)), ""


def compare_explorations(a: Exploration, b: Exploration, *, max_side: int = 256) -> GroupingComparison:
    """Compare the groupings and predictions of two explorations of the same image (see the module docstring).

    Args:
        a, b: :func:`~glmix_viz.slots.explore.explore_image` of one image under two models.
        max_side: longer side of the common pixel grid (the image's own size when smaller).

    Raises:
        ValueError: the explorations are of images of different sizes.
    """
    from glmix_viz.scoring.grouping import adjusted_rand_index

    if a.image.shape != b.image.shape:
        raise ValueError(f"the explorations are of different images: {a.image.shape} vs {b.image.shape}")
    image = _common_image(a.image, max_side)
    size = image.shape[:2]
    pairs, unmatched = match_blocks(a.block_names, b.block_names)
    places = block_stage_order(a.block_names)
    blocks = []
    for name_a, name_b in pairs:
        labels_a = upsample_labels(a.hard(name_a), size)
        num_slots_a = a.record(name_a).num_slots
        labels_b, matches = match_slots(labels_a, upsample_labels(b.hard(name_b), size), first_free=num_slots_a)
        blocks.append(BlockComparison(
            block_a=name_a, block_b=name_b, stage=places[name_a][0], order=places[name_a][1], labels_a=labels_a,
            labels_b=labels_b, num_slots_a=num_slots_a, num_slots_b=b.record(name_b).num_slots,
            agreement=adjusted_rand_index(labels_a, labels_b), matches=matches))
    classes, note = _class_changes(a, b)
    return GroupingComparison(image=image, blocks=blocks, unmatched=unmatched, classes=classes, class_note=note)


def compare_groupings(
    model_a: nn.Module,
    model_b: nn.Module,
    image: np.ndarray,
    *,
    input_size_a: Optional[Union[int, Tuple[int, int]]] = None,
    input_size_b: Optional[Union[int, Tuple[int, int]]] = None,
    max_side: int = 256,
    device: Optional[Union[str, torch.device]] = None,
) -> GroupingComparison:
    """Run ``image`` through both models and compare their groupings block by block, and their predictions.

    Args:
        model_a, model_b: GLNets (classifiers, or classifier-less encoders such as a segmenter's), in eval mode.
        image: (H, W, 3) uint8 RGB.
        input_size_a, input_size_b: each model's input (as :func:`~glmix_viz.slots.explore.explore_image`); default
            the longer side the model was trained at.
        max_side: longer side of the common pixel grid.
        device: where to run (default: each model's device).
    """
    from glmix_viz.models.info import model_input_size

    first = explore_image(model_a, image, input_size=input_size_a or model_input_size(model_a), device=device)
    second = explore_image(model_b, image, input_size=input_size_b or model_input_size(model_b), device=device)
    return compare_explorations(first, second, max_side=max_side)
