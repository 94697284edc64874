"""A refused file link says why, in one line (the page puts the parameter and its value before it): an unknown folder
(naming the folders there are), not a plain relative path, leading outside its folder, no such file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glmix_viz.app.links import LinkError, resolve_file


def _refusal(ref: str, roots) -> str:
    with pytest.raises(LinkError) as error:
        resolve_file(ref, roots)
    return str(error.value)


def test_each_refusal_says_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not for links")
    os.symlink(secret, root / "escape.pth")
    roots = {"runs": tmp_path, "checkpoints": root}
    assert _refusal("atlas:x.json", roots) == "names no folder this app was started with (checkpoints, runs)"
    assert _refusal("atlas:x.json", {}) == "names no folder this app was started with (none)"
    assert _refusal("checkpoints:../secret.txt", roots).startswith(
        "is not a plain relative path inside the folder checkpoints")
    assert _refusal("checkpoints:sub/../b.pth", roots).startswith("is not a plain relative path")
    assert _refusal("checkpoints:escape.pth", roots) == "leads outside the folder checkpoints"
    assert _refusal("checkpoints:gone.pth", roots) == "is no file in the folder checkpoints"
