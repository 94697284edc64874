"""A refused file link says which link and why, in one line: unknown folder (naming the folders there are), not a plain
relative path, leading outside its folder, no such file; a long link is cut to its first 60 characters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glmix_viz.app.links import LinkError, resolve_file


def _refusal(ref: str, roots) -> str:
    with pytest.raises(LinkError) as error:
        resolve_file(ref, roots)
    return str(error.value)


def test_each_refusal_names_the_link_and_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not for links")
    os.symlink(secret, root / "escape.pth")
    roots = {"runs": tmp_path, "checkpoints": root}
    assert _refusal("atlas:x.json", roots) == ("link: 'atlas:x.json' names no folder this app was started with "
                                               "(checkpoints, runs)")
    assert _refusal("atlas:x.json", {}).endswith("names no folder this app was started with (none)")
    assert _refusal("checkpoints:../secret.txt", roots) == (
        "link: 'checkpoints:../secret.txt' is not a plain relative path inside checkpoints")
    assert _refusal("checkpoints:escape.pth", roots) == "link: 'checkpoints:escape.pth' leads outside checkpoints"
    assert _refusal("checkpoints:gone.pth", roots) == "link: 'checkpoints:gone.pth': no such file in checkpoints"
    long = "checkpoints:" + "a" * 80 + ".pth"
    assert _refusal(long, roots) == f"link: {long[:60]!r}: no such file in checkpoints"
