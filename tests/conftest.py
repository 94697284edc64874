"""Shared fixtures: the golden reference of the official model (read in place, never copied) and small models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import glmix_viz.models  # noqa: F401  (registers the GLNet variants with timm)

GOLDEN_DIR = Path(os.environ.get("GLMIX_GOLDEN", Path(__file__).resolve().parents[2] / "shared" / "golden"))

torch.set_num_threads(min(2, torch.get_num_threads()))
os.environ.setdefault("GLMIX_APP_DEBUG", "1")  # the explorer lets unexpected exceptions reach the tests (app.main.guarded)


def in_ci(environ=os.environ) -> bool:
    """Running under continuous integration: ``CI`` set to true (GitHub Actions, GitLab and most others set it)."""
    return environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_golden(directory: Path, *, ci: bool) -> Path:
    """``directory`` when it holds the golden reference. Otherwise skip, saying why; but in CI fail: there a missing
    reference is a broken checkout, and ten skipped tests would pass for green."""
    if (directory / "golden_meta.json").is_file():
        return directory
    message = f"golden reference not found at {directory} (the shared/ folder beside the project root, or GLMIX_GOLDEN)"
    if ci:
        pytest.fail(f"{message}; CI is set, so the golden tests fail instead of skipping", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return require_golden(GOLDEN_DIR, ci=in_ci())


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
    from glmix_viz.labels import label_to_pil

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


def _pseudo_label_run(data: Path, checkpoint: Path, out: Path, *extra: str) -> None:
    from glmix_viz.cli import main

    code = main(["pseudo-label", "--voc-root", str(data), "--split", "val", "--checkpoint", str(checkpoint), "--out",
                 str(out), "--no-crf", "--workers", "0", "--no-progress", *extra])
    assert code == 0, f"pseudo-label into {out} failed"


@pytest.fixture(scope="session")
def run_tree(tmp_path_factory) -> dict:
    """Real run folders of ``pseudo-label`` on 6 generated 64-pixel images with a copy of the demo model:

    ``runs/slot_pool`` and ``runs/cam`` (complete, evaluated), ``runs/nested/sharded`` (shard 1/2 only, not
    evaluated), ``runs/gone`` (evaluated, its model file deleted afterwards). Returns the paths by name and ``data``.
    """
    import shutil

    from glmix_viz.cli import main
    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.open import demo_checkpoint

    base = tmp_path_factory.mktemp("run_tree")
    data, runs, models = base / "data", base / "runs", base / "models"
    make_shapes(data, ShapesConfig(image_size=64), num_train=1, num_val=6, seed=21, progress=False)
    models.mkdir()
    source = Path(demo_checkpoint())
    for name in ("demo", "gone"):
        shutil.copy(source, models / f"{name}.safetensors")
        shutil.copy(source.with_suffix(".json"), models / f"{name}.json")
    paths = {"data": data, "runs": runs, "slot_pool": runs / "slot_pool", "cam": runs / "cam",
             "sharded": runs / "nested" / "sharded", "gone": runs / "gone", "model": models / "demo.safetensors"}
    _pseudo_label_run(data, models / "demo.safetensors", paths["slot_pool"], "--method", "slot_pool")
    _pseudo_label_run(data, models / "demo.safetensors", paths["cam"], "--method", "cam")
    _pseudo_label_run(data, models / "demo.safetensors", paths["sharded"], "--method", "cam", "--shard", "1/2")
    _pseudo_label_run(data, models / "gone.safetensors", paths["gone"], "--method", "slot_pool")
    (models / "gone.safetensors").unlink()
    for name in ("slot_pool", "cam", "gone"):
        assert main(["evaluate", "--voc-root", str(data), "--split", "val", "--pred", str(paths[name]),
                     "--no-progress"]) == 0
    return paths
