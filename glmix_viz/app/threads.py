"""The explorer's CPU thread policy: how many torch threads an interactive session uses.

Leaving a core free matters on small machines: with as many threads as cores, a forward pass that competes with
anything else (the web server, another job) can be many times slower than with one thread fewer; on a busy 2-core
machine glnet_tiny took 2.6 s with 2 threads and 0.02 s with 1 (``bench/app_latency.py``).
"""

from __future__ import annotations

import os

__all__ = ["interactive_threads"]


def interactive_threads() -> int:
    """Torch CPU threads for interactive use: ``GLMIX_TORCH_THREADS`` if set, else all cores but one (at least 1)."""
    value = os.environ.get("GLMIX_TORCH_THREADS", "").strip()
    if value:
        return max(1, int(value))
    return max(1, (os.cpu_count() or 2) - 1)
