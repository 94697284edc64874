"""Label maps as files and colours: the ignore value, the VOC palette, and label PNGs read and written.

Every label map in glmix-viz (ground-truth masks, pseudo-masks, a segmenter's predictions) is an ``(H, W)`` uint8
array of class indices, 0 the background and :data:`IGNORE_INDEX` the pixels to ignore, stored as a palette ("P")
PNG with the PASCAL VOC colours, as VOC stores its masks. This module is the one place for those conventions; the
data set readers (:mod:`glmix_viz.data`), the pseudo-label job, the segmenter and the pictures all use it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from glmix_viz.errors import DataError

__all__ = ["IGNORE_INDEX", "channels_to_labels", "label_to_pil", "load_label_png", "palette_bytes", "voc_palette"]

IGNORE_INDEX: int = 255
"""Label value that marks pixels to ignore (object borders in VOC masks, uncertain pixels in pseudo-masks)."""


def voc_palette(n: int = 256) -> np.ndarray:
    """The standard PASCAL VOC colour map.

    Label ``i`` gets its colour by spreading its bits over the three channels: bit 0 of ``i`` goes to red, bit 1 to
    green, bit 2 to blue, each into the highest bit of the channel; bits 3, 4, 5 go one bit lower, and so on.
    Class 1 (aeroplane) is therefore (128, 0, 0), class 15 (person) (192, 128, 128) and 255 (ignore) (224, 224, 192).

    Args:
        n: Number of entries (labels ``0 .. n-1``), at most 256.

    Returns:
        ``(n, 3)`` uint8 array of RGB colours.
    """
    if not 0 < n <= 256:
        raise ValueError(f"voc_palette: n must be in 1..256, got {n}")
    labels = np.arange(n, dtype=np.int64)
    palette = np.zeros((n, 3), dtype=np.int64)
    for bit_group in range(8):  # bits 3*g, 3*g+1, 3*g+2 of the label -> bit (7 - g) of R, G, B
        for channel in range(3):
            bit = (labels >> (3 * bit_group + channel)) & 1
            palette[:, channel] |= bit << (7 - bit_group)
    return palette.astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _palette_tuple() -> tuple[int, ...]:
    return tuple(voc_palette(256).reshape(-1).tolist())


def palette_bytes() -> list[int]:
    """The 256-entry VOC palette as the flat list ``[r0, g0, b0, r1, ...]`` of 768 ints that ``putpalette`` wants."""
    return list(_palette_tuple())


def label_to_pil(label_map: np.ndarray) -> Image.Image:
    """A label map as a palette ("P" mode) PIL image with the VOC colours, as VOC stores its masks.

    Args:
        label_map: ``(H, W)`` integer array with values in ``0 .. 255``.

    Returns:
        ``Image`` of mode "P" and size ``(W, H)``; its pixel values are the labels themselves.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"label_to_pil: expected an (H, W) label map, got shape {label_map.shape}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > 255):
        raise ValueError("label_to_pil: labels must lie in 0..255")
    image = Image.fromarray(np.ascontiguousarray(label_map, dtype=np.uint8), mode="P")
    image.putpalette(palette_bytes())
    return image


def load_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG as class indices (never as colours).

    Palette ("P") and grey ("L", "I", "I;16") images give their pixel values directly. An RGB mask (a palette PNG
    someone converted) is mapped back through the VOC palette; a colour that is not in it is an error.

    Args:
        path: The PNG file.

    Returns:
        ``(H, W)`` uint8 label map.

    Raises:
        DataError: The file is missing, unreadable, or holds values that are not VOC labels.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L"):
                return np.array(image, dtype=np.uint8)
            if mode in ("I", "I;16", "I;16B", "I;16L"):
                values = np.array(image)
                if values.size and (values.min() < 0 or values.max() > 255):
                    raise DataError(f"{path}: label values outside 0..255 in a {mode} image")
                return values.astype(np.uint8)
            if mode in ("RGB", "RGBA"):
                return _labels_from_colours(np.array(image.convert("RGB")), path)
            raise DataError(f"{path}: label image has unsupported mode {mode!r}")
    except FileNotFoundError:
        raise DataError(f"{path}: label image not found") from None
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: cannot read label image ({error})") from None


def _labels_from_colours(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Map an ``(H, W, 3)`` VOC-coloured mask back to ``(H, W)`` uint8 labels through the palette."""
    palette = voc_palette(256).astype(np.int64)
    colour_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(code): label for label, code in enumerate(colour_codes)}
    pixel_codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    unique_codes, inverse = np.unique(pixel_codes, return_inverse=True)
    unknown = [int(code) for code in unique_codes if int(code) not in lookup]
    if unknown:
        first = unknown[0]
        raise DataError(
            f"{path}: RGB mask holds {len(unknown)} colour(s) outside the VOC palette, "
            f"e.g. {(first >> 16) & 255, (first >> 8) & 255, first & 255}"
        )
    labels = np.array([lookup[int(code)] for code in unique_codes], dtype=np.uint8)
    return labels[inverse.reshape(pixel_codes.shape)]


def channels_to_labels(channels: np.ndarray, class_indices: np.ndarray, *, fallback_to_channels: bool = False
                       ) -> np.ndarray:
    """Channel indices (255 = unsure) to label ids, as uint8 for a palette PNG.

    Args:
        channels: ``(H, W)`` uint8 channel indices into ``class_indices``; 255 where unsure.
        class_indices: ``(K + 1,)`` label id of every channel (e.g. the data set's background id, then the data-set id
            of every model class: :attr:`glmix_viz.data.classes.ClassMatch.label_ids`; 255 writes a channel as unsure).
        fallback_to_channels: when some label id does not fit a palette PNG (> 255, e.g. a 1000-class head), return
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
