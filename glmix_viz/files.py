"""Atomic file writers (a temporary file in the destination folder, then a rename) and the bytes they write.

An interrupted batch job never leaves a half-written file behind under its final name. The same encoders serve
downloads that never touch the disk (:func:`npz_bytes`).
"""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["npz_bytes", "save_bytes_atomic", "save_npz_atomic", "save_png_atomic"]


def save_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``.

    The folder is created if needed. Readers see either the old file or the complete new one, never a partial write;
    on failure the temporary file is removed. The file gets the usual permissions (``0o666`` minus the umask).

    Args:
        path: Destination file.
        data: Bytes to write.

    Returns:
        The destination path.
    """
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return destination


def save_png_atomic(path: str | os.PathLike, image: np.ndarray | Image.Image) -> Path:
    """Write a PNG atomically (see :func:`save_bytes_atomic`).

    Args:
        path: Destination ``.png`` file.
        image: ``(H, W)`` or ``(H, W, 3|4)`` ``uint8`` array, or a Pillow image (a ``P`` image keeps its palette, which
            is how VOC-style label maps are stored).

    Returns:
        The destination path.
    """
    pil_image = image if isinstance(image, Image.Image) else Image.fromarray(_check_png_array(image))
    buffer = io.BytesIO()
    pil_image.save(buffer, format="PNG")
    return save_bytes_atomic(path, buffer.getvalue())


def _check_png_array(array: np.ndarray) -> np.ndarray:
    """Accept uint8 (H, W), (H, W, 3) or (H, W, 4) arrays for PNG writing."""
    valid_shape = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    if array.dtype != np.uint8 or not valid_shape:
        raise ValueError(f"save_png_atomic expects a uint8 (H, W), (H, W, 3) or (H, W, 4) array, got "
                         f"shape {array.shape} dtype {array.dtype}")
    return np.ascontiguousarray(array)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of a compressed ``.npz`` holding ``arrays`` (a download; :func:`save_npz_atomic` writes a file)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Write a compressed ``.npz`` atomically (see :func:`save_bytes_atomic`); the path is used exactly as given.

    Args:
        path: Destination file (no ``.npz`` suffix is appended).
        **arrays: Arrays to store, by name.

    Returns:
        The destination path.
    """
    return save_bytes_atomic(path, npz_bytes(arrays))
