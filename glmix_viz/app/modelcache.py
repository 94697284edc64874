"""The explorer's models in memory: one bounded cache, least recently used first out, shared by every session.

Every model the explorer opens (the demo, a checkpoint, random weights, an uploaded checkpoint, a run's model, the
Compare view's untrained copy) goes through :data:`MODELS`. It holds at most ``max_models`` models and at most
``max_bytes`` of their weights (parameters and buffers); the model just opened is always kept, so what it holds is
at most ``max(max_bytes, the largest model opened)``: opening large models one after another leaves one of them in
memory, not all. Loads take the cache's lock, so two visitors never build two models at once. Dropped models are
freed at once (garbage collection and, on glibc, ``malloc_trim``, which hands freed memory back to the system).

The limits come from ``glmix-viz app --models-cached N --model-cache-mb MB`` (:mod:`glmix_viz.app.options`).
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, Hashable, List, Tuple

__all__ = ["MODELS", "ModelCache", "model_bytes"]


def model_bytes(value: Any) -> int:
    """Bytes of the weights (parameters and buffers) of a model, or of an object with ``model`` / ``segmenter``."""
    modules = [getattr(value, name, None) for name in ("model", "segmenter")] if not hasattr(value, "parameters") \
        else [value]
    seen, total = set(), 0
    for module in modules:
        if module is None or not hasattr(module, "parameters"):
            continue
        for tensor in list(module.parameters()) + list(module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def _release_memory() -> None:
    """Free what dropped models held now, and give it back to the system where the C library can (glibc)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # another C library
            pass


class ModelCache:
    """A least-recently-used cache of models, bounded by count and by bytes of weights; thread-safe."""

    def __init__(self, max_models: int = 3, max_bytes: int = 160 * 2**20) -> None:
        self.max_models, self.max_bytes = max_models, max_bytes
        self._items: "OrderedDict[Hashable, Tuple[Any, int]]" = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0

    def configure(self, max_models: int, max_bytes: int) -> None:
        """Change the limits (the app's options, read on every run); drops models beyond them."""
        with self._lock:
            if (max_models, max_bytes) != (self.max_models, self.max_bytes):
                self.max_models, self.max_bytes = max(1, int(max_models)), int(max_bytes)
                self._shrink(keep=None)

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The model of ``key``, loaded by ``load()`` when it is not held (a load that raises holds nothing)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            value = load()
            self.loads += 1
            self._items[key] = (value, model_bytes(value))
            self._shrink(keep=key)
            return value

    def _shrink(self, keep: Any) -> None:
        dropped = False
        while self._items and (len(self._items) > self.max_models or self.held_bytes() > self.max_bytes):
            oldest = next((key for key in self._items if key != keep), None)
            if oldest is None:
                break
            del self._items[oldest]
            dropped = True
        if dropped:
            _release_memory()

    def held_bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def held(self) -> List[Tuple[Hashable, int]]:
        """``(key, bytes)`` of the models held, least recently used first."""
        with self._lock:
            return [(key, size) for key, (_, size) in self._items.items()]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            _release_memory()

    def stats(self) -> Dict[str, int]:
        return {"models": len(self._items), "bytes": self.held_bytes(), "loads": self.loads}


MODELS = ModelCache()
"""The one cache of the explorer's process (every session, every page)."""
