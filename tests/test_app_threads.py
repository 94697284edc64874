"""The explorer's thread policy: all cores but one, unless GLMIX_TORCH_THREADS says otherwise."""

from __future__ import annotations

import pytest

from glmix_viz.app.threads import interactive_threads


def test_interactive_threads_leave_a_core_free_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLMIX_TORCH_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert interactive_threads() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert interactive_threads() == 15
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert interactive_threads() == 1
    monkeypatch.setenv("GLMIX_TORCH_THREADS", "3")
    assert interactive_threads() == 3
