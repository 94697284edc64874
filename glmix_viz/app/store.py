"""The upload store: uploaded files kept on the server under their content digest, so that a link can name them.

``<folder>/<sha1 of the bytes>/<the upload's name>``: the digest is the file's identity (the same bytes uploaded
twice are stored once), the name is kept for the page. Written atomically; never executed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from glmix_viz.files import save_bytes_atomic

DIGEST = re.compile(r"[0-9a-f]{40}")


def digest_of(data: bytes) -> str:
    """The store's name of some bytes: their SHA-1, 40 hexadecimal digits."""
    return hashlib.sha1(data).hexdigest()


def _safe_name(name: str) -> str:
    """The upload's file name reduced to letters, digits and ``._-`` (never a path)."""
    base = Path(name.replace("\\", "/")).name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")[:100] or "upload"


@dataclass(frozen=True)
class Stored:
    """A stored upload: its digest, its name and where its bytes are."""

    digest: str
    name: str
    path: Path


def put(folder: Path, name: str, data: bytes) -> Stored:
    """Keep ``data`` (uploaded as ``name``) in the store; returns where (the same bytes: the same entry)."""
    digest = digest_of(data)
    Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)  # private to the server's user when it creates it
    existing = get(folder, digest)
    if existing is not None:
        return existing
    path = save_bytes_atomic(Path(folder) / digest / _safe_name(name), data)
    return Stored(digest, path.name, path)


def get(folder: Path, digest: str) -> Optional[Stored]:
    """The stored upload of ``digest``, or None when it is not (or no longer) on this server.

    Raises:
        ValueError: ``digest`` is not 40 hexadecimal digits.
    """
    if not DIGEST.fullmatch(digest or ""):
        raise ValueError(f"{digest!r} is not an upload digest (40 hexadecimal digits)")
    entry = Path(folder) / digest
    files = sorted(path for path in entry.glob("*") if path.is_file() and not path.name.startswith(".")) \
        if entry.is_dir() else []
    return Stored(digest, files[0].name, files[0]) if files else None
