"""Slot features and regions of a batch of images, and the chunk files that keep them on disk.

Every slot that holds at least one pixel of its block's hard grouping (the arg-max slot of each pixel) is a *region*
and one row of the atlas:

* ``features``: the slot's feature, ``slots_in`` (the clustering-weighted mean of the block's pixel features: what the
  region looks like to the block) or ``slots_out`` (after slot attention), scaled to unit length, since a GLMix block
  compares slots and pixels by cosine; stored as float16;
* ``image`` (index into the job's id list), ``slot``;
* ``area``: share of the block's pixels whose arg-max slot it is;
* ``confidence``: mean, over those pixels, of their largest dispatch weight;
* ``label`` / ``label_share``: where a ground-truth class mask exists, the majority class of the region (the block's
  hard map brought to the mask's size by nearest neighbour; 255 pixels left out) and the share of the region's
  labelled pixels it holds; ``-1`` / ``0`` without a mask or without labelled pixels.

A chunk file (``features/chunk-NNNNN.npz``, uncompressed, written atomically) holds the rows of a run of images for
every chosen block (keys ``<j>/<field>`` for the ``j``-th block), the blocks' hard maps (``<j>/hard``, one per image
read, for the crops), the ids and indices of the images read (``ids``, ``index``) and the images that could not be read
(``failures``, JSON).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from glmix_viz.files import save_bytes_atomic
from glmix_viz.probe import GroupingRecord
from glmix_viz.slots.resize import upsample_labels

__all__ = ["FEATURES", "FEATURES_FOLDER", "FIELDS", "BlockRows", "block_rows", "chunk_paths", "read_chunk",
           "write_chunk"]

FEATURES = ("slots_in", "slots_out")
FEATURES_FOLDER = "features"
FIELDS = ("features", "image", "slot", "area", "confidence", "label", "label_share")


@dataclass
class BlockRows:
    """The regions of one block over some images (one entry per region; see the module docstring)."""

    features: np.ndarray
    image: np.ndarray
    slot: np.ndarray
    area: np.ndarray
    confidence: np.ndarray
    label: np.ndarray
    label_share: np.ndarray
    hard: np.ndarray  # (images, h, w): the block's hard map of every image, for the crops

    @classmethod
    def concat(cls, parts: Sequence["BlockRows"]) -> "BlockRows":
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in (*FIELDS, "hard")))

    def __len__(self) -> int:
        return int(self.image.shape[0])


def _majority_labels(hard: np.ndarray, mask: Optional[np.ndarray], num_slots: int):
    """``(label, share)`` per slot: the majority class of the slot's pixels at the mask's size (255 left out)."""
    label = np.full(num_slots, -1, np.int16)
    share = np.zeros(num_slots, np.float32)
    if mask is None:
        return label, share
    regions = upsample_labels(hard, mask.shape[:2]).astype(np.int64).ravel()
    classes = mask.astype(np.int64).ravel()
    valid = classes != 255
    counts = np.bincount(regions[valid] * 256 + classes[valid], minlength=num_slots * 256).reshape(num_slots, 256)
    totals = counts.sum(axis=1)
    has = totals > 0
    label[has] = counts[has].argmax(axis=1)
    share[has] = counts[has].max(axis=1) / totals[has]
    return label, share


def block_rows(record: GroupingRecord, masks: Sequence[Optional[np.ndarray]], image_index: Sequence[int],
               feature: str = "slots_in") -> BlockRows:
    """The regions of one block for a batch of images.

    Args:
        record: the block's record of a forward pass over the batch (``B`` images).
        masks: per image, its ``(H, W)`` ground-truth class map (255 = ignore) or ``None``.
        image_index: per image, its index in the job's id list.
        feature: ``slots_in`` or ``slots_out``.
    """
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
    logits = record.logits.float().cpu()
    num_slots = logits.shape[1]
    top, hard = torch.softmax(logits, dim=1).max(dim=1)
    hard, top = hard.numpy(), top.numpy()
    feats = getattr(record, feature).float().cpu()
    feats = torch.nn.functional.normalize(feats, dim=-1).numpy()
    parts = []
    for b, mask in enumerate(masks):
        flat = hard[b].ravel()
        counts = np.bincount(flat, minlength=num_slots)
        sure = np.bincount(flat, weights=top[b].ravel(), minlength=num_slots)
        kept = np.flatnonzero(counts)
        label, share = _majority_labels(hard[b], mask, num_slots)
        parts.append(BlockRows(
            features=feats[b, kept].astype(np.float16), image=np.full(kept.size, image_index[b], np.int64),
            slot=kept.astype(np.int16), area=(counts[kept] / flat.size).astype(np.float32),
            confidence=(sure[kept] / counts[kept]).astype(np.float32), label=label[kept], label_share=share[kept],
            hard=hard[b][None].astype(np.uint8 if num_slots <= 256 else np.int32)))
    return BlockRows.concat(parts)


def chunk_paths(out_dir: os.PathLike, num_images: int, chunk_size: int) -> List[Path]:
    """The chunk files of a job (``features/chunk-NNNNN.npz``), in order, whether they exist or not."""
    count = (num_images + chunk_size - 1) // chunk_size
    return [Path(out_dir) / FEATURES_FOLDER / f"chunk-{i:05d}.npz" for i in range(count)]


def write_chunk(path: Path, rows: Sequence[BlockRows], ids: Sequence[str], index: Sequence[int],
                failures: List[Dict[str, str]]) -> None:
    """Write one chunk file atomically (``rows``: one :class:`BlockRows` per chosen block, in the job's order)."""
    arrays: Dict[str, np.ndarray] = {"ids": np.asarray(list(ids), dtype=str), "index": np.asarray(index, np.int64),
                                     "failures": np.asarray(json.dumps(failures))}
    for j, block in enumerate(rows):
        for name in (*FIELDS, "hard"):
            arrays[f"{j}/{name}"] = getattr(block, name)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    save_bytes_atomic(path, buffer.getvalue())


def read_chunk(path: os.PathLike, block: int, *, fields: Sequence[str] = FIELDS) -> Dict[str, np.ndarray]:
    """Some fields of one block of a chunk file (``hard`` too when asked; ``features`` as float32)."""
    with np.load(path, allow_pickle=False) as data:
        out = {name: data[f"{block}/{name}"] for name in fields}
    if "features" in out:
        out["features"] = out["features"].astype(np.float32)
    return out


def chunk_header(path: os.PathLike) -> Dict[str, object]:
    """``ids``, ``index`` and ``failures`` of a chunk file."""
    with np.load(path, allow_pickle=False) as data:
        return {"ids": [str(i) for i in data["ids"]], "index": data["index"].tolist(),
                "failures": json.loads(str(data["failures"]))}
