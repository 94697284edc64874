"""The upload store: uploaded files kept on the server under their content digest, so that a link can name them.

``<folder>/<sha1 of the bytes>/<the upload's name>``: the digest is the file's identity (the same bytes uploaded
twice are stored once), the name is kept for the page. Never executed.

Bounded and shared: the store holds at most ``cap`` bytes (:data:`DEFAULT_CAP_BYTES`, ``glmix-viz app
--upload-cap-mb``); putting a file that overflows it evicts the least recently used entries (an entry is used when
it is put or read: its folder's modification time is its last use). Several sessions (browser tabs, visitors,
server threads) may put, read and evict at once:

* a file is written to a temporary name and moved into place with ``os.replace`` (a reader sees all of it or none);
* an entry is evicted by renaming its folder away first, then deleting it (a reader finds it whole or not at all);
* puts and evictions of one store take an exclusive lock on ``<folder>/.lock`` (``fcntl.flock``; a thread lock
  where there is no ``fcntl``), so two evictions never count or remove the same bytes twice.

What is stored is checked first by the caller (:func:`glmix_viz.app.sidebar` decodes an image, loads a checkpoint
before it keeps it): nothing undecodable stays here (:func:`remove` takes back a put that turned out unreadable).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from glmix_viz.errors import GlmixVizError
from glmix_viz.files import save_bytes_atomic

try:  # POSIX: a lock shared by every process and thread that opens the store's lock file
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads of one server only
    fcntl = None

DIGEST = re.compile(r"[0-9a-f]{40}")
DEFAULT_CAP_BYTES = 512 * 2**20
"""The store's default size cap: 512 MiB (``--upload-cap-mb``, ``GLMIX_UPLOAD_CAP_MB``)."""
LOCK_NAME = ".lock"
_THREAD_LOCK = threading.Lock()


class UploadError(GlmixVizError, ValueError):
    """An upload the store cannot take or a name it does not hold (one line saying why)."""


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


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """The store's exclusive lock (across processes with ``fcntl``, across threads always)."""
    Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)  # private to the server's user when it creates it
    with _THREAD_LOCK if fcntl is None else contextlib.nullcontext():
        if fcntl is None:  # pragma: no cover
            yield
            return
        with open(Path(folder) / LOCK_NAME, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _check_digest(digest: str) -> None:
    if not DIGEST.fullmatch(digest or ""):
        raise UploadError(f"{str(digest)[:60]!r} is not an upload digest (40 hexadecimal digits)")


def _touch(entry: Path) -> None:
    """Mark an entry as just used (its folder's modification time)."""
    try:
        now = time.time()
        os.utime(entry, (now, now))
    except OSError:  # evicted meanwhile
        pass


def put(folder: Path, name: str, data: bytes, cap: int = DEFAULT_CAP_BYTES) -> Stored:
    """Keep ``data`` (uploaded as ``name``) in the store; returns where (the same bytes: the same entry). Evicts the
    least recently used other entries until the store holds at most ``cap`` bytes.

    Raises:
        UploadError: ``data`` alone is larger than ``cap``.
    """
    if len(data) > cap:
        raise UploadError(f"{_safe_name(name)}: {len(data) / 2**20:.1f} MiB is more than the upload store holds "
                          f"({cap / 2**20:.0f} MiB)")
    digest = digest_of(data)
    with locked(folder):
        existing = get(folder, digest)
        if existing is None:
            path = save_bytes_atomic(Path(folder) / digest / _safe_name(name), data)
            existing = Stored(digest, path.name, path)
        evict(folder, cap, keep=digest)
    return existing


def get(folder: Path, digest: str) -> Optional[Stored]:
    """The stored upload of ``digest`` (now marked as used), or None when it is not (or no longer) on this server.

    Raises:
        UploadError: ``digest`` is not 40 hexadecimal digits (also a ValueError).
    """
    _check_digest(digest)
    entry = Path(folder) / digest
    try:
        files = sorted(path for path in entry.iterdir() if path.is_file() and not path.name.startswith("."))
    except OSError:  # no such entry, or evicted while listed
        return None
    if not files:
        return None
    _touch(entry)
    return Stored(digest, files[0].name, files[0])


def read(folder: Path, digest: str) -> Optional[Tuple[Stored, bytes]]:
    """The stored upload of ``digest`` and its bytes, or None when it is not there (or was evicted while read)."""
    stored = get(folder, digest)
    if stored is None:
        return None
    try:
        return stored, stored.path.read_bytes()
    except OSError:
        return None


def remove(folder: Path, digest: str) -> None:
    """Take an entry out of the store (an upload that turned out unreadable)."""
    _check_digest(digest)
    with locked(folder):
        _discard(Path(folder) / digest)


def _discard(entry: Path) -> None:
    """Rename the entry away (readers see it whole or gone), then delete it."""
    trash = entry.with_name(f".evicted-{uuid.uuid4().hex}")
    try:
        os.replace(entry, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def entries(folder: Path) -> List[Tuple[float, int, Path]]:
    """The store's entries as ``(last use, bytes, folder)``, least recently used first."""
    found = []
    try:
        children = list(Path(folder).iterdir())
    except OSError:
        return []
    for entry in children:
        if not DIGEST.fullmatch(entry.name):
            continue
        try:
            size = sum(path.stat().st_size for path in entry.iterdir() if path.is_file())
            found.append((entry.stat().st_mtime, size, entry))
        except OSError:
            continue
    return sorted(found, key=lambda item: (item[0], item[2].name))


def total_bytes(folder: Path) -> int:
    """Bytes held by the store's entries."""
    return sum(size for _, size, _ in entries(folder))


def evict(folder: Path, cap: int, keep: str = "") -> List[str]:
    """Remove least recently used entries (never ``keep``) until the store holds at most ``cap`` bytes; returns the
    digests removed. Call with the store's lock held (:func:`put` does)."""
    held = entries(folder)
    total = sum(size for _, size, _ in held)
    removed = []
    for _, size, entry in held:
        if total <= cap:
            break
        if entry.name == keep:
            continue
        _discard(entry)
        removed.append(entry.name)
        total -= size
    return removed
