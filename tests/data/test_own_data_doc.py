"""docs/own_data.md: its five-command walkthrough, parsed out of the doc and run at tiny sizes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from glmix_viz.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "own_data.md"

TINY = {  # the doc's sizes -> seconds-long ones
    "--num-train": "6", "--num-val": "3", "--image-size": "32", "--epochs": "1", "--batch-size": "3",
    "--input-size": "32",
}
EXTRA = {  # per command: options for a fast, quiet CPU run
    "train": ["--workers", "0", "--threads", "1", "--device", "cpu", "--no-progress"],
    "pseudo-label": ["--no-crf", "--workers", "0", "--device", "cpu", "--no-progress"],
    "segment-train": ["--max-steps", "1", "--decoder-channels", "16", "--workers", "0", "--device", "cpu",
                      "--no-progress"],
    "segment": ["--device", "cpu", "--no-progress"],
    "evaluate": ["--no-progress"],
}


def walkthrough_commands(text: str) -> list:
    """The ``glmix-viz`` command lines of the walkthrough's bash block (``&&`` splits a line into two)."""
    block = text.split("## From a folder to a trained segmenter", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.strip().splitlines():
        for part in line.split("&&"):
            words = shlex.split(part)
            assert words[0] == "glmix-viz", part
            commands.append(words[1:])
    return commands


def _tiny(words: list, root: Path) -> list:
    out = []
    for index, word in enumerate(words):
        previous = words[index - 1] if index else None
        if previous in TINY:
            out.append(TINY[previous])
        elif previous in ("--out", "--data", "--checkpoint", "--labels", "--init", "--pred"):
            out.append(str(root / word))
        else:
            out.append(word)
    return out + EXTRA.get(words[0], [])


def test_the_walkthrough_runs(tmp_path):
    commands = walkthrough_commands(DOC.read_text())
    assert [words[0] for words in commands] == ["make-shapes", "train", "pseudo-label", "segment-train", "segment",
                                                "evaluate"]
    assert all("--data" in words for words in commands[1:])
    for words in commands:
        assert main(_tiny(words, tmp_path)) == 0, words
    scores = json.loads((tmp_path / "runs" / "pred" / "eval.json").read_text())
    assert scores["class_names"][0] == "background" and scores["num_images"] == 3
    assert (tmp_path / "runs" / "segmenter" / "best.safetensors").is_file()
