"""Robust image decoding and preprocessing for the model.

This module is the one image loader of glmix-viz. Every command, the app, the notebooks and the batch pipeline read
pictures through :func:`load_image` (or :func:`load_image_with_info`), which turns whatever a user hands over (a path,
an upload's bytes or file object; JPEG, PNG, WebP, BMP, TIFF, GIF; grayscale, palette, alpha, CMYK, 16-bit, float;
EXIF-rotated) into one thing: an RGB ``uint8`` array of shape ``(H, W, 3)``. Anything that cannot be read raises
:class:`~glmix_viz.errors.ImageLoadError` with a one-line message naming the file and the problem.

Preprocessing (:func:`to_tensor`, :func:`batch_to_tensor`, :func:`denormalize`) uses timm's ImageNet mean and standard
deviation, which is what GLNet was trained with.

File writing lives in :mod:`glmix_viz.files`.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import IO, Any, Sequence, Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from glmix_viz.errors import ImageLoadError, one_line

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageSource",
    "batch_to_tensor",
    "check_min_size",
    "denormalize",
    "load_image",
    "load_image_with_info",
    "resolve_size",
    "to_tensor",
]

IMAGENET_MEAN: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]
"""What :func:`load_image` accepts: a path, raw encoded bytes, or a binary file-like object (e.g. an upload)."""

DEFAULT_UPLOAD_NAME = "<upload>"
SIZE_MULTIPLE = 32  # GLNet downsamples by 32; sizes chosen by `resolve_size` from an int are multiples of this.

_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_EXIF_ORIENTATION_TAG = 0x0112


class _UnsupportedModeError(ValueError):
    """A Pillow mode that cannot be converted to RGB."""


# ----------------------------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------------------------


def load_image(source: ImageSource, *, name: str | None = None, max_side: int | None = None) -> np.ndarray:
    """Decode an image file or upload into an RGB ``uint8`` array.

    See :func:`load_image_with_info` for what is accepted and how every mode is converted.

    Args:
        source: A path (``str`` / ``Path``), encoded bytes, or a binary file-like object.
        name: Name used in error messages for bytes / file objects (default: the object's ``name`` attribute, or
            ``"<upload>"``). Ignored for paths, which are named by the path itself.
        max_side: If given and the longer side exceeds it, the image is downscaled (area interpolation) so that its
            longer side equals ``max_side``, keeping the aspect ratio.

    Returns:
        The image, ``(H, W, 3)`` ``uint8`` RGB.

    Raises:
        ImageLoadError: The file is missing, empty, corrupt, truncated, of an unsupported type, or too large.
    """
    image, _ = load_image_with_info(source, name=name, max_side=max_side)
    return image


def load_image_with_info(
    source: ImageSource, *, name: str | None = None, max_side: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode an image and report what was done to it.

    Conversion rules, whatever the file holds:

    * Formats: anything Pillow reads (JPEG, PNG, WebP, BMP, TIFF, GIF, ...); files Pillow cannot identify are tried
      with OpenCV. Animated GIF / WebP / multi-page TIFF: the first frame.
    * EXIF orientation is applied (``ImageOps.exif_transpose``), so the array is the picture as it is meant to be seen.
    * Grayscale (``1``, ``L``) is replicated to three channels; palette (``P``) images are expanded, honouring their
      transparency; CMYK / YCbCr are converted by Pillow.
    * Transparency (``RGBA``, ``LA``, ``PA``, transparent palette entries) is composited over white.
    * 16-bit data (``I;16`` variants, 16-bit RGB / RGBA PNG and TIFF, read with OpenCV because Pillow keeps only the
      high byte) is scaled by its bit depth: ``v * 255 / (2**bits - 1)``, rounded; so 65535 becomes 255 and 32768
      becomes 128. A 32-bit integer image (``I``) whose values fit in 0..65535 is treated as 16-bit; otherwise it is
      min-max scaled. TIFF's ``BitsPerSample`` tag, when present, gives the depth (e.g. 12-bit scientific images).
    * Float images (``F``) are min-max scaled to 0..255 (a constant image becomes black; NaNs become 0).

    Args:
        source: A path (``str`` / ``Path``), encoded bytes, or a binary file-like object.
        name: Name used in error messages for bytes / file objects (default: the object's ``name`` attribute, or
            ``"<upload>"``). Ignored for paths.
        max_side: If given and the longer side exceeds it, downscale (area interpolation) keeping the aspect ratio so
            the longer side equals ``max_side``.

    Returns:
        ``(image, info)``: the ``(H, W, 3)`` ``uint8`` RGB array and a dict with keys ``name`` (the label used in
        messages), ``original_size`` (``(width, height)`` after EXIF orientation, before downscaling), ``size``
        (``(width, height)`` returned), ``downscaled`` (bool), ``mode`` (the file's Pillow mode, or
        ``"cv2:<dtype>"`` when OpenCV decoded it), ``format`` (e.g. ``"JPEG"``, or ``None``) and
        ``frames`` (number of frames in the file, 1 for still images).

    Raises:
        ImageLoadError: The file is missing, empty, corrupt, truncated, of an unsupported type, or too large.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive integer, got {max_side}")
    data, label = _read_source(source, name)
    image, info = _decode(data, label)
    height, width = image.shape[:2]
    info["original_size"] = (width, height)
    info["downscaled"] = False
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        new_width = max(1, min(max_side, round(width * scale)))
        new_height = max(1, min(max_side, round(height * scale)))
        image = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)
        info["downscaled"] = True
    info["size"] = (image.shape[1], image.shape[0])
    info["name"] = label
    return np.ascontiguousarray(image), info


def check_min_size(image: np.ndarray, min_side: int = 32, *, name: str = "image") -> None:
    """Raise if an image is too small to be worth feeding to the model.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array.
        min_side: Smallest accepted height and width, in pixels.
        name: File name used in the message.

    Raises:
        ImageLoadError: Either side is shorter than ``min_side``, e.g.
            ``"cat.jpg is 20x15 pixels; at least 32x32 is needed"``.
    """
    height, width = image.shape[:2]
    if height < min_side or width < min_side:
        raise ImageLoadError(f"{name} is {width}x{height} pixels; at least {min_side}x{min_side} is needed")


def _read_source(source: ImageSource, name: str | None) -> tuple[bytes, str]:
    """Return the encoded bytes of ``source`` and the label that names it in messages."""
    if isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"{label}: file not found")
        if path.is_dir():
            raise ImageLoadError(f"{label}: is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ImageLoadError(f"{label}: cannot read file ({error.strerror or error})") from error
    elif isinstance(source, (bytes, bytearray, memoryview)):
        label = name or DEFAULT_UPLOAD_NAME
        data = bytes(source)
    elif hasattr(source, "read"):
        label = name or _stream_name(source) or DEFAULT_UPLOAD_NAME
        try:
            data = source.read()
        except (OSError, ValueError) as error:
            raise ImageLoadError(f"{label}: cannot read upload ({error})") from error
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ImageLoadError(f"{label}: upload must be opened in binary mode")
        data = bytes(data)
    else:
        raise TypeError(f"load_image expects a path, bytes or a binary file object, got {type(source).__name__}")
    if len(data) == 0:
        raise ImageLoadError(f"{label}: empty file")
    return data, label


def _stream_name(stream: Any) -> str | None:
    """The ``name`` of a file object (open files and Streamlit uploads have one), if it is a string."""
    stream_name = getattr(stream, "name", None)
    return os.fspath(stream_name) if isinstance(stream_name, (str, os.PathLike)) else None


def _decode(data: bytes, label: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode encoded bytes to RGB ``uint8``, with Pillow first and OpenCV for what Pillow cannot do."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as pil_image:
                info: dict[str, Any] = {
                    "format": pil_image.format,
                    "mode": pil_image.mode,
                    "frames": int(getattr(pil_image, "n_frames", 1)),
                }
                if _is_sixteen_bit_color(pil_image, data):
                    image = _decode_with_cv2(data, label)
                    image = _apply_orientation(image, _exif_orientation(pil_image))
                    return image, info
                pil_image.seek(0)
                pil_image.load()
                bits = _tiff_bits_per_sample(pil_image)
                oriented = _exif_transpose(pil_image)
                return _pil_to_rgb(oriented, bits), info
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        limit = Image.MAX_IMAGE_PIXELS
        raise ImageLoadError(
            f"{label}: image too large (more than {limit} pixels; refused as a possible decompression bomb)"
        ) from error
    except UnidentifiedImageError:
        pass  # Not a format Pillow knows: give OpenCV a chance below.
    except ImageLoadError:
        raise
    except _UnsupportedModeError as error:
        raise ImageLoadError(f"{label}: {error}") from error
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as error:
        reason = one_line(error, with_type=False)
        raise ImageLoadError(f"{label}: cannot decode image (truncated or corrupt file: {reason})") from error
    image = _decode_with_cv2(data, label)
    return image, {"format": None, "mode": f"cv2:{image.dtype}", "frames": 1}


def _is_sixteen_bit_color(pil_image: Image.Image, data: bytes) -> bool:
    """True for 16-bit-per-channel colour PNG / TIFF, which Pillow would silently reduce to their high byte."""
    if pil_image.format == "PNG" and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26 and data[12:16] == b"IHDR":
        bit_depth, color_type = data[24], data[25]
        return bit_depth == 16 and color_type in (2, 6)  # 2: RGB, 6: RGBA.
    if pil_image.format == "TIFF" and pil_image.mode in ("RGB", "RGBA", "RGBX"):
        bits = _tiff_bits_per_sample(pil_image)
        return bits is not None and bits > 8
    return False


def _tiff_bits_per_sample(pil_image: Image.Image) -> int | None:
    """TIFF ``BitsPerSample`` (tag 258), or ``None`` for other formats or when absent."""
    tags = getattr(pil_image, "tag_v2", None)
    if tags is None:
        return None
    bits = tags.get(258)
    if bits is None:
        return None
    if isinstance(bits, (tuple, list)):
        bits = max(bits) if bits else None
    return int(bits) if bits else None


def _exif_orientation(pil_image: Image.Image) -> int:
    """EXIF orientation tag (1..8), 1 when absent or unreadable."""
    try:
        return int(pil_image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not make a good image unreadable.
        return 1


def _exif_transpose(pil_image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block leaves the image as stored."""
    try:
        transposed = ImageOps.exif_transpose(pil_image)
    except Exception:  # noqa: BLE001 - see _exif_orientation.
        return pil_image
    return pil_image if transposed is None else transposed


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an ``(H, W, ...)`` array, as ``ImageOps.exif_transpose`` does."""
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return np.swapaxes(image, 0, 1)
    if orientation == 6:
        return np.rot90(image, k=-1)
    if orientation == 7:
        return np.swapaxes(image, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(image, k=1)
    return image


def _pil_to_rgb(pil_image: Image.Image, tiff_bits: int | None) -> np.ndarray:
    """Convert a loaded Pillow image of any mode to ``(H, W, 3)`` ``uint8`` RGB (see load_image_with_info)."""
    mode = pil_image.mode
    if mode == "RGB":
        return np.asarray(pil_image, dtype=np.uint8).copy()
    if mode in ("L", "1"):
        gray = np.asarray(pil_image.convert("L"), dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        has_transparency = "transparency" in pil_image.info
        return _composite_over_white(pil_image.convert("RGBA")) if has_transparency else _as_rgb(pil_image)
    if mode in _ALPHA_MODES:
        return _composite_over_white(pil_image.convert("RGBA"))
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(pil_image).astype(np.float64)
        return _gray_to_rgb(_scale_by_bit_depth(values, tiff_bits or 16))
    if mode == "I":
        values = np.asarray(pil_image).astype(np.float64)
        if tiff_bits is not None and tiff_bits <= 16:
            return _gray_to_rgb(_scale_by_bit_depth(values, tiff_bits))
        if values.size and values.min() >= 0 and values.max() <= 65535:
            return _gray_to_rgb(_scale_by_bit_depth(values, 16))
        return _gray_to_rgb(_min_max_to_uint8(values))
    if mode == "F":
        return _gray_to_rgb(_min_max_to_uint8(np.asarray(pil_image).astype(np.float64)))
    return _as_rgb(pil_image)


def _as_rgb(pil_image: Image.Image) -> np.ndarray:
    """Let Pillow convert a mode (CMYK, YCbCr, P without transparency, ...) to RGB."""
    try:
        converted = pil_image.convert("RGB")
    except (ValueError, OSError) as error:
        raise _UnsupportedModeError(f"unsupported image mode {pil_image.mode}") from error
    return np.asarray(converted, dtype=np.uint8).copy()


def _composite_over_white(rgba_image: Image.Image) -> np.ndarray:
    """Composite an RGBA Pillow image over a white background; returns ``(H, W, 3)`` ``uint8``."""
    rgba = np.asarray(rgba_image, dtype=np.uint8)
    return _composite_array_over_white(rgba[:, :, :3].astype(np.float64), rgba[:, :, 3].astype(np.float64) / 255.0)


def _composite_array_over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` (H, W, 3) in 0..255 and ``alpha`` (H, W) in 0..1 → ``rgb * alpha + 255 * (1 - alpha)`` as uint8."""
    blended = rgb * alpha[:, :, None] + 255.0 * (1.0 - alpha[:, :, None])
    return np.clip(np.floor(blended + 0.5), 0, 255).astype(np.uint8)


def _scale_by_bit_depth(values: np.ndarray, bits: int) -> np.ndarray:
    """Map integer samples of the given bit depth to 0..255 (``round(v * 255 / (2**bits - 1))``), as uint8."""
    full_scale = float(2**bits - 1)
    return np.clip(np.floor(values * 255.0 / full_scale + 0.5), 0, 255).astype(np.uint8)


def _min_max_to_uint8(values: np.ndarray) -> np.ndarray:
    """Min-max scale to 0..255 uint8; constant input becomes 0; NaN becomes 0."""
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(values[finite].min()), float(values[finite].max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.where(finite, values, low) - low) * 255.0 / (high - low)
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """``(H, W)`` → ``(H, W, 3)`` by replication."""
    return np.repeat(gray[:, :, None], 3, axis=2)


def _decode_with_cv2(data: bytes, label: str) -> np.ndarray:
    """Decode with OpenCV (unchanged depth and channels) and convert to RGB uint8; used for 16-bit colour."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageLoadError(f"{label}: cannot decode image (unsupported type, truncated or not an image file)")
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[:, :, 0]
    if decoded.dtype == np.uint8:
        samples = decoded.astype(np.float64)
    elif decoded.dtype == np.uint16:
        samples = decoded.astype(np.float64) * 255.0 / 65535.0
    else:  # float or signed data: min-max over all channels (alpha, if any, is rescaled separately below).
        samples = None
    if decoded.ndim == 2:
        gray = _min_max_to_uint8(decoded.astype(np.float64)) if samples is None else _round_to_uint8(samples)
        return _gray_to_rgb(gray)
    channels = decoded.shape[2]
    if samples is None:
        color = _min_max_to_uint8(decoded[:, :, :3].astype(np.float64)).astype(np.float64)
        alpha = None if channels < 4 else _min_max_to_uint8(decoded[:, :, 3].astype(np.float64)) / 255.0
    else:
        color = samples[:, :, :3]
        alpha = None if channels < 4 else samples[:, :, 3] / 255.0
    rgb = color[:, :, ::-1]  # OpenCV stores BGR(A).
    if alpha is None:
        return _round_to_uint8(rgb)
    return _composite_array_over_white(rgb, alpha)


def _round_to_uint8(values: np.ndarray) -> np.ndarray:
    """Round half up and clip to uint8."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------------------------------


def resolve_size(height: int, width: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """The ``(height, width)`` that :func:`to_tensor` resizes an image of the given size to.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        size: ``None`` keeps the image size; a ``(height, width)`` tuple is used exactly; an ``int`` scales the image so
            its longer side becomes ``size``, keeping the aspect ratio, then rounds both sides to the nearest multiple
            of 32 (at least 32), because GLNet downsamples by 32. E.g. 500x375 (WxH) with ``size=224`` → (160, 224).

    Returns:
        ``(height, width)``.
    """
    if size is None:
        return height, width
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (height, width) with positive entries, got {size}")
        return int(size[0]), int(size[1])
    if int(size) < 1:
        raise ValueError(f"size must be positive, got {size}")
    scale = int(size) / max(height, width)

    def to_multiple(side: float) -> int:
        return max(SIZE_MULTIPLE, int(round(side / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    return to_multiple(height * scale), to_multiple(width * scale)


def to_tensor(
    image: np.ndarray,
    *,
    size: int | tuple[int, int] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Turn an RGB image into a normalised model input.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        size: ``None`` (keep), an ``int`` (longer side to ``size``, aspect kept, sides rounded to multiples of 32; see
            :func:`resolve_size`) or an exact ``(height, width)``. Resizing is bicubic and antialiased (Pillow).
        mean: Per-channel mean, in 0..1 units.
        std: Per-channel standard deviation, in 0..1 units.

    Returns:
        ``(1, 3, h, w)`` ``float32`` tensor, ``(pixel / 255 - mean) / std``.
    """
    _check_rgb_uint8(image)
    target_height, target_width = resolve_size(image.shape[0], image.shape[1], size)
    if (target_height, target_width) != image.shape[:2]:
        resized = Image.fromarray(image).resize((target_width, target_height), Image.Resampling.BICUBIC)
        image = np.asarray(resized, dtype=np.uint8)
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8, order="C")).permute(2, 0, 1).to(torch.float32).div_(255.0)
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return ((tensor - mean_tensor) / std_tensor).unsqueeze(0).contiguous()


def batch_to_tensor(
    images: Sequence[np.ndarray],
    size: int | tuple[int, int],
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Stack several RGB images into one batch, every image resized to the same size.

    Args:
        images: Sequence of ``(H_i, W_i, 3)`` ``uint8`` RGB arrays (sizes may differ).
        size: ``(height, width)`` of every image in the batch; an ``int`` ``n`` means ``(n, n)`` (unlike
            :func:`to_tensor`, a batch needs one shape, so an int does not keep each image's aspect ratio).
        mean: Per-channel mean, in 0..1 units.
        std: Per-channel standard deviation, in 0..1 units.

    Returns:
        ``(N, 3, height, width)`` ``float32`` tensor.
    """
    if len(images) == 0:
        raise ValueError("batch_to_tensor needs at least one image")
    exact_size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    return torch.cat([to_tensor(image, size=exact_size, mean=mean, std=std) for image in images], dim=0)


def denormalize(
    tensor: torch.Tensor, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Undo :func:`to_tensor` for one image.

    Args:
        tensor: ``(1, 3, H, W)`` or ``(3, H, W)`` normalised tensor. A batch of more than one image is refused rather
            than silently reduced to its first image.
        mean: Per-channel mean used to normalise.
        std: Per-channel standard deviation used to normalise.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB.
    """
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"denormalize takes one image, got a batch of {tensor.shape[0]}; index the batch first")
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"denormalize expects (1, 3, H, W) or (3, H, W), got {tuple(tensor.shape)}")
    values = tensor.detach().to("cpu", torch.float32)
    mean_tensor = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_tensor = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    pixels = (values * std_tensor + mean_tensor) * 255.0
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _check_rgb_uint8(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is an ``(H, W, 3)`` ``uint8`` array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got shape {shape} dtype {dtype}")
