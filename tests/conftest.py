"""Shared fixtures: the golden reference of the official model (read in place, never copied) and small models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import glmix_viz  # noqa: F401  (registers the GLNet variants with timm)

GOLDEN_DIR = Path(os.environ.get("GLMIX_GOLDEN", Path(__file__).resolve().parents[2] / "shared" / "golden"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not (GOLDEN_DIR / "golden_meta.json").is_file():
        pytest.skip(f"golden reference not found at {GOLDEN_DIR} (the shared/ folder beside the project root)")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_meta(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "golden_meta.json").read_text())


@pytest.fixture(scope="session")
def golden_inputs(golden_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(golden_dir / "input.safetensors"))


def _corrupted_prediction(gt, index: int):
    """A prediction made from a ground truth: ``index + 1`` rows of wrong labels and a few unsure pixels."""
    import numpy as np

    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    pred[: index + 1] = (pred[: index + 1] + 1) % 5
    pred[-1, ::7] = 255
    return pred


def _write_label_run(dataset, folder: Path, worsen: str | None = None) -> Path:
    """``<id>.png`` predictions of every id of ``dataset`` (a shapes set) in ``folder``, each image a little worse
    than the one before; ``worsen``: that image predicted all background."""
    from glmix_viz.data.voc import label_to_pil

    folder.mkdir(parents=True)
    for index, image_id in enumerate(dataset.ids):
        pred = _corrupted_prediction(dataset.load_mask(image_id), index)
        if image_id == worsen:
            pred[:] = 0
        label_to_pil(pred).save(folder / f"{image_id}.png")
    return folder


@pytest.fixture(scope="session")
def write_label_run():
    """``write_label_run(dataset, folder, worsen=None)``: a folder of label PNGs to evaluate (see above)."""
    return _write_label_run
