"""The explorer's upload store (issue 26): a size cap, least recently used out, safe with several sessions at once;
and the bounded model cache."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from glmix_viz.app import store
from glmix_viz.app.modelcache import ModelCache, model_bytes


def _bytes(seed: int, size: int) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32) + bytes(size % 32)


def _age(folder: Path, digest: str, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(folder / digest, (when, when))


def test_the_least_recently_used_uploads_are_evicted_beyond_the_cap(tmp_path: Path) -> None:
    a = store.put(tmp_path, "a.png", _bytes(0, 400), cap=1000)
    _age(tmp_path, a.digest, 300)
    b = store.put(tmp_path, "b.png", _bytes(1, 400), cap=1000)
    _age(tmp_path, b.digest, 200)
    assert store.total_bytes(tmp_path) == 800
    c = store.put(tmp_path, "c.png", _bytes(2, 400), cap=1000)
    # a (the least recently used) went when c overflowed the cap; b and c stay
    assert store.get(tmp_path, a.digest) is None and store.get(tmp_path, b.digest) and store.get(tmp_path, c.digest)
    _age(tmp_path, b.digest, 100)
    _age(tmp_path, c.digest, 50)
    assert store.get(tmp_path, b.digest) is not None  # reading b makes it the most recently used
    d = store.put(tmp_path, "d.png", _bytes(9, 400), cap=1000)
    assert store.get(tmp_path, c.digest) is None, "c was the least recently used"
    assert {store.get(tmp_path, s.digest) is not None for s in (b, d)} == {True}
    assert store.total_bytes(tmp_path) == 800


def test_an_upload_larger_than_the_store_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(store.UploadError, match=r"big\.png: .* MiB is more than the upload store holds") as error:
        store.put(tmp_path, "big.png", _bytes(1, 3 * 2**20), cap=2**20)
    assert "\n" not in str(error.value) and not list(tmp_path.glob("[0-9a-f]*"))


def test_many_sessions_put_and_read_at_once_and_the_store_stays_whole(tmp_path: Path) -> None:
    """Eight threads put 10 files each into a store that holds 12, while four others read: no exception, every
    entry found is complete (its bytes hash to its name), and the store ends within its cap."""
    size, cap, errors, seen = 1000, 12_000, [], []
    payloads = [_bytes(seed, size) for seed in range(80)]

    def writer(index: int) -> None:
        try:
            for payload in payloads[index * 10:(index + 1) * 10]:
                stored = store.put(tmp_path, f"f{index}.png", payload, cap=cap)
                assert stored.digest == store.digest_of(payload)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    def reader() -> None:
        try:
            for _ in range(300):
                for payload in payloads[::7]:
                    found = store.read(tmp_path, store.digest_of(payload))
                    if found is not None:
                        assert found[1] == payload  # never a partial file
                        seen.append(1)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)] + \
        [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    held = store.entries(tmp_path)
    assert 0 < sum(size for _, size, _ in held) <= cap
    for _, _, entry in held:
        (file,) = [path for path in entry.iterdir()]
        assert hashlib.sha1(file.read_bytes()).hexdigest() == entry.name
    assert not [path for path in tmp_path.iterdir() if path.name.startswith((".evicted", ".tmp"))]


def test_a_name_that_is_no_digest_is_an_upload_error_not_an_exception_for_the_page(tmp_path: Path) -> None:
    with pytest.raises(store.UploadError, match="not an upload digest"):
        store.get(tmp_path, "../../x")


class _Weights:
    def __init__(self, mib: int) -> None:
        import torch

        self.model = torch.nn.Linear(mib * 2**18, 1, bias=False)  # mib MiB of float32


def test_the_model_cache_keeps_the_newest_and_drops_the_least_recently_used_within_its_bounds() -> None:
    cache = ModelCache(max_models=3, max_bytes=5 * 2**20)
    loads = []

    def load(name: str, mib: int):
        return lambda: loads.append(name) or _Weights(mib)

    small = cache.get("small", load("small", 1))
    assert model_bytes(small) == 2**20
    cache.get("big1", load("big1", 3))
    assert [key for key, _ in cache.held()] == ["small", "big1"]
    cache.get("small", load("small", 1))  # held: no load, now the most recently used
    cache.get("big2", load("big2", 3))  # 1 + 3 + 3 > 5: big1 (least recently used) goes
    assert [key for key, _ in cache.held()] == ["small", "big2"] and loads == ["small", "big1", "big2"]
    cache.get("huge", load("huge", 8))  # larger than the cap alone: kept, alone
    assert [key for key, _ in cache.held()] == ["huge"]
    cache.configure(max_models=1, max_bytes=100 * 2**20)
    cache.get("small", load("small", 1))
    assert [key for key, _ in cache.held()] == ["small"]
    with pytest.raises(RuntimeError):
        cache.get("bad", lambda: (_ for _ in ()).throw(RuntimeError("unreadable")))
    assert [key for key, _ in cache.held()] == ["small"]  # a failed load holds nothing
