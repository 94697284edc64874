"""Training data: a split (any :class:`~glmix_viz.data.base.Split` with image-level labels) resized and (when it fits) cached as uint8, normalisation, and the seeded
batch-wise augmentation of the training loop."""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from glmix_viz.data.base import Split
from glmix_viz.data.registry import open_split
from glmix_viz.errors import DataError
from glmix_viz.images import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["LoadedSplit", "load_split", "normalize_batch", "denormalize_batch", "augment_batch", "maybe_tqdm"]


class _ResizedSplit(torch.utils.data.Dataset):
    """Images of a split resized to a square side, as uint8 (3, S, S) tensors, with multi-hot labels (K,)."""

    def __init__(self, split: Split, size: int) -> None:
        self.split = split
        self.size = size

    def __len__(self) -> int:
        return len(self.split.ids)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        import cv2

        image_id = self.split.ids[index]
        image = self.split.image(image_id)
        if image.shape[:2] != (self.size, self.size):
            shrink = max(image.shape[:2]) > self.size
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            image = cv2.resize(image, (self.size, self.size), interpolation=interpolation)
        labels = self.split.labels(image_id)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), torch.from_numpy(labels)


class LoadedSplit:
    """A split ready for training: either fully in memory or streamed through a DataLoader.

    Attributes:
        split: the data set (a :class:`~glmix_viz.data.base.Split`).
        size: square side of the images.
        images: (N, 3, S, S) uint8 when cached, else None.
        labels: (N, K) float32 multi-hot labels (always in memory).
    """

    def __init__(self, split: Split, size: int, cache_gb: float, workers: int, progress: bool) -> None:
        self.split = split
        self.size = size
        self.workers = workers
        self.dataset = _ResizedSplit(split, size)
        self.labels = torch.from_numpy(np.stack([split.labels(i) for i in split.ids])).float()
        self.images: Optional[torch.Tensor] = None
        if len(split.ids) * 3 * size * size <= cache_gb * 1e9:
            loader = torch.utils.data.DataLoader(self.dataset, batch_size=64, num_workers=workers)
            chunks = []
            for images, _ in maybe_tqdm(loader, progress, f"loading {split.split}", len(loader)):
                chunks.append(images)
            self.images = torch.cat(chunks)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, indices: Sequence[int], batch_size: int, drop_last: bool
    ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images (B, 3, S, S), labels (B, K)) in the order of ``indices``."""
        indices = list(indices)
        stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
        if self.images is not None:
            for start in range(0, stop, batch_size):
                chosen = torch.as_tensor(indices[start:start + batch_size])
                yield self.images[chosen], self.labels[chosen]
            return
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.dataset, indices[:stop]), batch_size=batch_size, num_workers=self.workers,
            persistent_workers=False, pin_memory=torch.cuda.is_available(),
        )
        yield from loader


def load_split(root: str, split: str, size: int, *, cache_gb: float = 4.0, workers: int = 2,
               progress: bool = False) -> LoadedSplit:
    """Open a split of any format :func:`~glmix_viz.data.registry.open_split` knows, for training or evaluation.

    Raises:
        DataError: missing folder or split, a split without images, or a data set without image-level labels.
    """
    opened = open_split(root, split)
    if not opened.has_labels:
        raise DataError(f"{root}: training needs image-level labels, and this data set has none (a plain image "
                        "folder); use a labelled folder (images/, labels.csv, classes.txt)")
    if len(opened.ids) == 0:
        raise DataError(f"{root}: split {split!r} has no images")
    return LoadedSplit(opened, size, cache_gb, workers, progress)


def maybe_tqdm(iterable: Any, enabled: bool, desc: str, total: Optional[int] = None) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W) normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def renormalize_batch(colours: torch.Tensor) -> torch.Tensor:
    """Colours in [0, 1] (B, 3, H, W) -> normalised with the ImageNet mean and std (:func:`normalize_batch` of
    colours already divided by 255)."""
    mean = torch.tensor(IMAGENET_MEAN, device=colours.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=colours.device).view(1, 3, 1, 1)
    return (colours.float() - mean) / std


def denormalize_batch(inputs: torch.Tensor) -> torch.Tensor:
    """Normalised float (B, 3, H, W) -> colours in [0, 1] (the inverse of :func:`normalize_batch`, clamped)."""
    mean = torch.tensor(IMAGENET_MEAN, device=inputs.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=inputs.device).view(1, 3, 1, 1)
    return (inputs.float() * std + mean).clamp(0.0, 1.0)



def augment_batch(images: torch.Tensor, generator: torch.Generator, mode: str) -> torch.Tensor:
    """Random per-image affine warp of a normalised batch (flips, rotations by 90 degrees, zoom, shift).

    The parameters are drawn on the CPU from ``generator`` (so they are the same on every device) and applied with
    one ``grid_sample`` (bilinear, border padding).

    Args:
        images: (B, 3, H, W) float.
        generator: CPU generator.
        mode: "shapes" (h/v flips, 90-degree rotations, zoom 1-1.25x, shift up to 8%), "flips" (h/v flips only,
            exact: no resampling), "standard" (h flip, zoom 1-2.5x with the crop kept inside the image) or "none".

    Returns:
        (B, 3, H, W) augmented images.
    """
    if mode == "none":
        return images
    batch = images.shape[0]
    uniform = torch.rand(batch, 6, generator=generator)
    flip_x = torch.where(uniform[:, 0] < 0.5, -1.0, 1.0)
    if mode == "flips":
        flip_y = torch.where(uniform[:, 1] < 0.5, -1.0, 1.0).view(-1, 1, 1, 1)
        images = torch.where(flip_x.view(-1, 1, 1, 1).to(images.device) < 0, images.flip(-1), images)
        return torch.where(flip_y.to(images.device) < 0, images.flip(-2), images)
    if mode == "shapes":
        flip_y = torch.where(uniform[:, 1] < 0.5, -1.0, 1.0)
        quarter_turns = (uniform[:, 2] * 4).floor().clamp(max=3)
        zoom = 1.0 + 0.25 * uniform[:, 3]
        max_shift = 0.08
    else:
        flip_y = torch.ones(batch)
        quarter_turns = torch.zeros(batch)
        zoom = 1.0 + 1.5 * uniform[:, 3]
        max_shift = None
    scale = 1.0 / zoom
    angle = quarter_turns * (math.pi / 2)
    cos, sin = torch.cos(angle).round(), torch.sin(angle).round()
    if max_shift is None:
        room = 1.0 - scale
        shift_x, shift_y = (2 * uniform[:, 4] - 1) * room, (2 * uniform[:, 5] - 1) * room
    else:
        shift_x, shift_y = (2 * uniform[:, 4] - 1) * max_shift, (2 * uniform[:, 5] - 1) * max_shift
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = cos * scale * flip_x
    theta[:, 0, 1] = -sin * scale * flip_y
    theta[:, 1, 0] = sin * scale * flip_x
    theta[:, 1, 1] = cos * scale * flip_y
    theta[:, 0, 2] = shift_x
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

