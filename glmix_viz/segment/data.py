"""Training pairs for the segmenter: an image reader's images with label PNGs (pseudo-masks or ground truth).

:func:`check_pairs` looks at every id once before training: a label PNG that is missing, unreadable, of another size
than its image, or holding values that are neither a class nor 255, is reported by id and the id is left out.
:class:`SegmentationPairs` serves augmented crops; the augmentation (random scale, pad, crop, flip, colour jitter) is
albumentations', with nearest-neighbour resizing and 255 padding for the labels. Its random state is seeded for each
item from ``(seed, epoch, index)`` (:class:`EpochSampler` hands the epoch to the items), so a run draws the same
crops whatever the number of loader workers, and a resumed run the same as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from glmix_viz.data.base import Split
from glmix_viz.errors import DataError, GlmixVizError, ImageLoadError, one_line
from glmix_viz.images import IMAGENET_MEAN, IMAGENET_STD
from glmix_viz.labels import IGNORE_INDEX, load_label_png

__all__ = ["EpochSampler", "PairCheck", "SegmentationPairs", "build_augmentation", "check_pairs", "image_size_of",
           "label_path"]

PathLike = Union[str, os.PathLike]


def label_path(labels_dir: Optional[PathLike], image_id: str) -> Optional[Path]:
    """``<labels_dir>/<id>.png``, or None when training on the data set's own ground truth."""
    return None if labels_dir is None else Path(labels_dir) / f"{image_id}.png"


def image_size_of(dataset: Split, image_id: str) -> Tuple[int, int]:
    """``(height, width)`` of an image from its file header (no decoding), EXIF rotation applied."""
    path = dataset.image_path(image_id)
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: image file not found (id {image_id!r})") from None
    except OSError as error:
        raise ImageLoadError(f"{path}: cannot read image ({one_line(error, with_type=False)})") from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _load_labels(dataset: Split, labels_dir: Optional[PathLike], image_id: str) -> np.ndarray:
    path = label_path(labels_dir, image_id)
    if path is None:
        mask = dataset.mask(image_id)
        if mask is None:
            raise DataError(f"{dataset.root}: no ground-truth mask for image {image_id!r}")
        return mask
    return load_label_png(path)


@dataclass
class PairCheck:
    """What :func:`check_pairs` found.

    Attributes:
        ids: the usable ids, in split order.
        failures: ``{"id", "reason"}`` for every id left out.
    """

    ids: List[str]
    failures: List[Dict[str, str]] = field(default_factory=list)


def check_pairs(dataset: Split, ids: Sequence[str], labels_dir: Optional[PathLike], num_classes: int,
                *, progress: bool = False) -> PairCheck:
    """Keep the ids whose label PNG exists, reads, has its image's size and holds only classes or 255.

    Args:
        dataset: a reader (``image_path``, ``load_mask``, ``root``).
        ids: the split's ids.
        labels_dir: folder of ``<id>.png`` label maps; None for the data set's ground truth.
        num_classes: classes, background included.
        progress: tqdm bar.
    """
    check = PairCheck(ids=[])
    for image_id in tqdm(ids, desc="check labels", unit="img", disable=not progress, leave=False):
        try:
            labels = _load_labels(dataset, labels_dir, image_id)
            height, width = image_size_of(dataset, image_id)
            if labels.shape != (height, width):
                where = label_path(labels_dir, image_id) or dataset.mask_path(image_id)
                raise ValueError(f"{where}: labels are {labels.shape[1]}x{labels.shape[0]} but the image is "
                                 f"{width}x{height}")
            bad = np.unique(labels[(labels >= num_classes) & (labels != IGNORE_INDEX)])
            if bad.size:
                raise ValueError(f"label values {bad[:5].tolist()} are neither classes 0..{num_classes - 1} nor 255")
        except (GlmixVizError, ValueError) as error:
            check.failures.append({"id": image_id, "reason": one_line(error)})
            continue
        check.ids.append(image_id)
    return check


def build_augmentation(crop_size: int, scale_range: Tuple[float, float] = (0.5, 2.0), *, train: bool = True):
    """The albumentations pipeline: random scale, pad to the crop (image 0, labels 255), random crop, flip, colour.

    Args:
        crop_size: side of the square training crop (a multiple of 32).
        scale_range: random rescale factors, relative to the image's size.
        train: False gives only the pad and a centre crop (deterministic).
    """
    pad = A.PadIfNeeded(min_height=crop_size, min_width=crop_size, border_mode=cv2.BORDER_CONSTANT, fill=0,
                        fill_mask=IGNORE_INDEX)
    if not train:
        return A.Compose([pad, A.CenterCrop(crop_size, crop_size)])
    return A.Compose([
        A.RandomScale(scale_limit=(scale_range[0] - 1.0, scale_range[1] - 1.0), p=1.0),
        pad,
        A.RandomCrop(crop_size, crop_size),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=0.8),
    ])


class EpochSampler(torch.utils.data.Sampler):
    """A seeded shuffle of ``range(size)`` per epoch, split across processes, handing out ``(epoch, index)`` keys.

    The order is :class:`torch.utils.data.DistributedSampler`'s (seeded by ``seed + epoch``; one process: all ids),
    so it depends on the epoch alone, not on the epochs drawn before (a resumed run draws what a straight one does).

    Args:
        size: number of items; world, rank: the processes and this one's rank; seed: the run's seed.
    """

    def __init__(self, size: int, *, world: int = 1, rank: int = 0, seed: int = 0) -> None:
        self.order = torch.utils.data.DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=True,
                                                         seed=seed, drop_last=world > 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        return iter([(self.epoch, index) for index in self.order])


class SegmentationPairs(torch.utils.data.Dataset):
    """Augmented ``(image, labels)`` crops of checked ids.

    Args:
        dataset: the image reader (``load_image``, ``load_mask``).
        ids: checked ids (:func:`check_pairs`).
        labels_dir: label PNG folder, or None for the ground truth.
        transform: an albumentations pipeline (:func:`build_augmentation`).
        seed: the run's seed; item ``(epoch, index)`` (or ``index``: epoch 0) draws its augmentation from
            ``(seed, epoch, index)``.

    Items:
        ``image`` ``(3, S, S)`` float32 normalised with the ImageNet mean / std, ``labels`` ``(S, S)`` int64 (255 =
        ignore).
    """

    def __init__(self, dataset: Split, ids: Sequence[str], labels_dir: Optional[PathLike], transform: Any,
                 seed: int = 0) -> None:
        self.dataset = dataset
        self.ids = list(ids)
        self.labels_dir = labels_dir
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.ids)

    def seed_transform(self, epoch: int, index: int) -> None:
        """Seed the augmentation's random state for item ``index`` of ``epoch``."""
        sequence = np.random.SeedSequence([self.seed, epoch, index])
        python_seed = int(sequence.generate_state(1)[0])
        self.transform.set_random_state(np.random.default_rng(sequence), random.Random(python_seed))

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        self.seed_transform(epoch, index)
        image_id = self.ids[index]
        image = self.dataset.load_image(image_id)
        labels = _load_labels(self.dataset, self.labels_dir, image_id)
        out = self.transform(image=image, mask=labels)
        pixels = torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return (pixels - mean) / std, torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
