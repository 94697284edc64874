"""One image through a GLNet, kept whole for browsing: groupings of every GLMix block, predictions, class maps.

The explorer app and the notebooks ask the same questions of one image; this module answers them with plain arrays,
so that neither holds any science of its own:

* :func:`explore_image` runs the network once inside a :class:`~glmix_viz.probe.GroupingProbe` and keeps everything
  worth looking at: the grouping record of every GLMix block, the class logits and the class activation maps.
* :func:`top_predictions` - the best classes with their names and probabilities.
* :func:`slot_areas` - how much of the image each slot holds (hard: share of arg-max pixels; soft: mean dispatch).
* :func:`slot_class_evidence` - which classes a slot carries: the CAM of every class averaged over the slot's pixels
  with the slot's clustering weights (softmax of the logits over pixels).
* :func:`slot_flow` - where a slot's pixels go in the next blocks: the dispatch distribution of later blocks averaged
  over the slot's pixels, weighted by the slot's dispatch weight.
* :func:`pixel_distributions` - one pixel's distribution over slots (its dispatch weights) in every block.
* :func:`assignment_arrays` - the raw tensors for download (:func:`glmix_viz.files.npz_bytes` encodes them).

Facts about the model itself (input size, normalisation, how logits become probabilities) are
:mod:`glmix_viz.models.info`.

Pixel coordinates are ``(y, x)`` in the pixels of :attr:`Exploration.image`; a block's map of size ``(h, w)`` covers
the whole image, so image pixel ``(y, x)`` falls in map cell ``(floor(y * h / H), floor(x * w / W))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from glmix_viz.images import to_tensor
from glmix_viz.models.cam import class_activation_maps
from glmix_viz.models.info import class_probabilities, describe_model, input_mean_std
from glmix_viz.probe import GroupingProbe, GroupingRecord
from glmix_viz.slots.resize import upsample_maps

__all__ = [
    "Exploration",
    "Prediction",
    "assignment_arrays",
    "explore_image",
    "map_cell",
    "pixel_distributions",
    "predicted_classes",
    "read_only",
    "slot_areas",
    "slot_class_evidence",
    "slot_flow",
    "top_predictions",
]


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (the array itself keeps its flags)."""
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Prediction:
    """One class of the classifier's ranking.

    Attributes:
        index: class index of the model's head (0-based).
        name: class name (``"class <index>"`` when the model names none).
        probability: class probability (softmax, or sigmoid for multi-label models).
    """

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Exploration:
    """What one forward pass of one image shows; frozen, its arrays read-only (one result may serve many readers).

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB image the maps are drawn over (the network input is a resized copy).
        input_size: ``(h, w)`` of the network input.
        records: GLMix block path -> its :class:`GroupingRecord` (batch of one, on the CPU), in network order; a
            read-only mapping.
        logits: ``(num_classes,)`` float32 class logits (empty when the model has no classifier).
        cam: ``(num_classes, hf, wf)`` float32 class activation maps of the final feature map (ReLU of the head's
            weights dotted with the features), or None when the model has no linear head.
        class_names: one name per class.
        multi_label: the classifier is multi-label (probabilities by sigmoid) rather than single-label (softmax).

    The arrays given are kept as read-only views (the caller's own arrays keep their flags), and every map the methods
    return is a read-only view too: writing into a result shared through a cache raises instead of changing it for
    everyone.
    """

    image: np.ndarray
    input_size: Tuple[int, int]
    records: Mapping[str, GroupingRecord]
    logits: np.ndarray
    cam: Optional[np.ndarray]
    class_names: List[str] = field(default_factory=list)
    multi_label: bool = False

    def __post_init__(self) -> None:
        frozen = {
            "image": read_only(self.image),
            "input_size": (int(self.input_size[0]), int(self.input_size[1])),
            "records": MappingProxyType(dict(self.records)),
            "logits": read_only(np.asarray(self.logits, dtype=np.float32)),
            "cam": None if self.cam is None else read_only(self.cam),
            "class_names": [str(name) for name in self.class_names],
        }
        for name, value in frozen.items():
            object.__setattr__(self, name, value)

    @property
    def block_names(self) -> List[str]:
        """GLMix block paths, in network order."""
        return list(self.records)

    def dispatch(self, block: Union[str, int]) -> np.ndarray:
        """``(S, h, w)`` float32 dispatch weights of a block (each pixel's distribution over slots)."""
        return read_only(self.record(block).dispatch[0].numpy())

    def cluster(self, block: Union[str, int]) -> np.ndarray:
        """``(S, h, w)`` float32 clustering weights of a block (each slot's distribution over pixels)."""
        return read_only(self.record(block).cluster[0].numpy())

    def block_logits(self, block: Union[str, int]) -> np.ndarray:
        """``(S, h, w)`` float32 slot-pixel similarity logits of a block, before any softmax."""
        return read_only(self.record(block).logits[0].float().numpy())

    def hard(self, block: Union[str, int]) -> np.ndarray:
        """``(h, w)`` int64 hard grouping of a block (arg-max slot of every pixel)."""
        return read_only(self.record(block).hard[0].numpy())

    def record(self, block: Union[str, int]) -> GroupingRecord:
        """The record of a block, by path or by index into :attr:`block_names`."""
        if isinstance(block, int):
            return self.records[self.block_names[block]]
        if block not in self.records:
            raise KeyError(f"{block!r} is not a GLMix block of this model; blocks: {self.block_names}")
        return self.records[block]

    @property
    def probabilities(self) -> np.ndarray:
        """``(num_classes,)`` float32 class probabilities: sigmoid for multi-label models, softmax otherwise."""
        if self.logits.size == 0:
            return self.logits
        logits = torch.from_numpy(self.logits.astype(np.float64))
        return class_probabilities(logits, self.multi_label).numpy().astype(np.float32)


def explore_image(
    model: nn.Module,
    image: np.ndarray,
    *,
    input_size: Optional[Union[int, Tuple[int, int]]] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> Exploration:
    """Run one image through a GLNet and keep its groupings, logits and class activation maps.

    Args:
        model: a GLNet (in eval mode; it is not changed).
        image: ``(H, W, 3)`` uint8 RGB.
        input_size: network input: an ``int`` longer side (aspect kept, sides multiples of 32), an exact
            ``(height, width)``, or None for the image's own size (see :func:`glmix_viz.images.to_tensor`).
        device: where to run; the model's device when None.

    Returns:
        An :class:`Exploration` holding ``image`` itself (not a copy) and CPU tensors / arrays.
    """
    if device is None:
        device = next(model.parameters()).device
    mean, std = input_mean_std(model)
    inputs = to_tensor(image, size=input_size, mean=mean, std=std).to(device)
    with torch.inference_mode(), GroupingProbe(model) as probe:
        features = model.forward_features(inputs)
        logits = model.forward_head(features) if getattr(model, "num_classes", 0) else None
    records = {name: record.to("cpu") for name, record in probe.items()}
    cam = None
    if logits is not None and isinstance(model.get_classifier(), nn.Linear):
        with torch.inference_mode():
            cam = class_activation_maps(model, features)[0].float().cpu().numpy()
    info = describe_model(model)
    return Exploration(
        image=image,
        input_size=(int(inputs.shape[-2]), int(inputs.shape[-1])),
        records=records,
        logits=np.zeros(0, np.float32) if logits is None else logits[0].float().cpu().numpy(),
        cam=cam,
        class_names=list(info.class_names),
        multi_label=info.multi_label,
    )


def top_predictions(probabilities: np.ndarray, names: Sequence[str], k: int = 5) -> List[Prediction]:
    """The ``k`` most probable classes, best first (ties: lower index first).

    Args:
        probabilities: ``(num_classes,)`` class probabilities.
        names: one name per class.
        k: how many (fewer when there are fewer classes).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(names) != probabilities.size:
        raise ValueError(f"{len(names)} class names for {probabilities.size} classes")
    order = np.argsort(-probabilities, kind="stable")[: max(0, int(k))]
    return [Prediction(int(index), str(names[index]), float(probabilities[index])) for index in order]


def predicted_classes(probabilities: np.ndarray, threshold: float = 0.5) -> Tuple[int, ...]:
    """The classes predicted present: every class above ``threshold``, else the most probable one (never none).

    Args:
        probabilities: ``(num_classes,)`` class probabilities (sigmoid of a multi-label head, or a softmax).
        threshold: a class counts as present above this probability.

    Returns:
        Class indices in increasing order; empty only when there are no classes.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if probabilities.size == 0:
        return ()
    present = np.flatnonzero(probabilities > threshold)
    return tuple(int(index) for index in present) if present.size else (int(np.argmax(probabilities)),)


def slot_areas(logits: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """How much of the image each slot holds.

    Args:
        logits: ``(S, h, w)`` one block's slot-pixel logits.

    Returns:
        ``(hard, soft)``, each ``(S,)`` float64 summing to 1: ``hard[s]`` the share of pixels whose arg-max slot is
        ``s``; ``soft[s]`` the mean over pixels of the dispatch weight of ``s``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3:
        raise ValueError(f"logits must be (S, h, w), got {logits.shape}")
    num_slots = logits.shape[0]
    flat = logits.reshape(num_slots, -1)
    hard = np.bincount(flat.argmax(axis=0), minlength=num_slots) / flat.shape[1]
    soft = _softmax(flat, axis=0).mean(axis=1)
    return hard, soft


def slot_class_evidence(cam: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Class evidence carried by each slot: the CAM averaged over the slot's pixels with its clustering weights.

    The CAM is bilinearly resized to the block's grid; slot ``s`` then reads ``sum_p cluster[s, p] * cam[k, p]``,
    where ``cluster = softmax over pixels(logits)``.

    Args:
        cam: ``(K, hf, wf)`` non-negative class maps (e.g. :attr:`Exploration.cam`).
        logits: ``(S, h, w)`` one block's slot-pixel logits.

    Returns:
        ``(S, K)`` float32 evidence, in the CAM's units.
    """
    cam = np.asarray(cam, dtype=np.float32)
    logits = np.asarray(logits, dtype=np.float64)
    if cam.ndim != 3 or logits.ndim != 3:
        raise ValueError(f"cam must be (K, hf, wf) and logits (S, h, w), got {cam.shape} and {logits.shape}")
    resized = upsample_maps(cam, logits.shape[1:]).reshape(cam.shape[0], -1).astype(np.float64)
    cluster = _softmax(logits.reshape(logits.shape[0], -1), axis=1)
    return (cluster @ resized.T).astype(np.float32)


def slot_flow(exploration: Exploration, block: Union[str, int], slot: int) -> Dict[str, np.ndarray]:
    """Where the pixels of one slot go in every later block.

    The slot's dispatch map ``w`` (its weight at every pixel) and a later block's dispatch ``D'`` are brought to the
    finer of the two grids (bilinear); the flow is ``sum_p w_p D'[:, p] / sum_p w_p``: the later block's slot
    distribution averaged over the slot's pixels.

    Args:
        exploration: the result of :func:`explore_image`.
        block: the block holding the slot (path or index).
        slot: the slot's index.

    Returns:
        ``{later block path: (S',) float64 distribution summing to 1}``, in network order (empty for the last block).
    """
    names = exploration.block_names
    name = names[block] if isinstance(block, int) else block
    source = exploration.dispatch(name)
    if not 0 <= slot < source.shape[0]:
        raise ValueError(f"slot {slot} is out of range: {name} has {source.shape[0]} slots")
    flows: Dict[str, np.ndarray] = {}
    for later in names[names.index(name) + 1 :]:
        target = exploration.dispatch(later)
        size = max(source.shape[1:], target.shape[1:], key=lambda hw: hw[0] * hw[1])
        weights = upsample_maps(source[slot : slot + 1], size)[0].astype(np.float64).reshape(-1)
        maps = upsample_maps(target, size).astype(np.float64).reshape(target.shape[0], -1)
        total = weights.sum()
        flow = maps @ weights / total if total > 0 else maps.mean(axis=1)
        flows[later] = flow / flow.sum()
    return flows


def pixel_distributions(exploration: Exploration, y: int, x: int) -> Dict[str, np.ndarray]:
    """One image pixel's distribution over slots (its dispatch weights) in every block.

    Args:
        exploration: the result of :func:`explore_image`.
        y: row in :attr:`Exploration.image`.
        x: column in :attr:`Exploration.image`.

    Returns:
        ``{block path: (S,) float32}`` in network order; each block reads map cell
        ``(floor(y * h / H), floor(x * w / W))``.
    """
    height, width = exploration.image.shape[:2]
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"pixel (y={y}, x={x}) is outside the {width}x{height} image")
    out: Dict[str, np.ndarray] = {}
    for name in exploration.block_names:
        dispatch = exploration.dispatch(name)
        row, col = map_cell(dispatch.shape[1:], (height, width), y, x)
        out[name] = dispatch[:, row, col].copy()
    return out


def map_cell(map_size: Tuple[int, int], image_size: Tuple[int, int], y: int, x: int) -> Tuple[int, int]:
    """The ``(row, col)`` of an ``(h, w)`` map that covers image pixel ``(y, x)`` of an ``(H, W)`` image."""
    rows, cols = int(map_size[0]), int(map_size[1])
    row = min(rows - 1, int(y * rows // image_size[0]))
    col = min(cols - 1, int(x * cols // image_size[1]))
    return row, col


def assignment_arrays(exploration: Exploration) -> Dict[str, np.ndarray]:
    """The raw grouping tensors of every block, for saving.

    Returns:
        ``{"<block>.logits": (S, h, w) float32, "<block>.hard": (h, w) int16, "<block>.slots_out": (S, C) float32,
        ..., "class_logits": (num_classes,) float32, "input_size": (2,) int64, "image_size": (2,) int64}``; dispatch
        weights are ``softmax(logits, axis=0)``.
    """
    arrays: Dict[str, np.ndarray] = {}
    for name, record in exploration.records.items():
        arrays[f"{name}.logits"] = record.logits[0].float().numpy()
        arrays[f"{name}.hard"] = record.hard[0].numpy().astype(np.int16)
        arrays[f"{name}.slots_out"] = record.slots_out[0].float().numpy()
    arrays["class_logits"] = exploration.logits
    arrays["input_size"] = np.asarray(exploration.input_size, dtype=np.int64)
    arrays["image_size"] = np.asarray(exploration.image.shape[:2], dtype=np.int64)
    return arrays


def _softmax(values: np.ndarray, axis: int) -> np.ndarray:
    shifted = values - values.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)
