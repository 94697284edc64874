"""Concept importance: on one image it is exactly the intervention that removes the concept's slots; it lands in
atlas.json beside purity, and the Atlas tab shows it in probability points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

BLOCK = "stages.1.blocks.0"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from glmix_viz.atlas import AtlasSettings, run_atlas
    from glmix_viz.data.shapes import ShapesConfig, make_shapes
    from glmix_viz.data.voc import VOCDataset
    from glmix_viz.models.loading import load_model
    from glmix_viz.open import demo_checkpoint

    root = tmp_path_factory.mktemp("atlas_importance")
    make_shapes(root / "shapes", ShapesConfig(image_size=64), num_train=0, num_val=4, seed=13, progress=False)
    dataset = VOCDataset(root / "shapes", "val")
    model = load_model(demo_checkpoint(), device="cpu")
    run_atlas(dataset, model, root / "atlas", AtlasSettings(blocks=(BLOCK,), input_size=64, batch_size=2,
              chunk_size=2), 3, progress=False, examples=1, resamples=20)
    return root / "atlas", dataset, model


def test_one_image_importance_is_the_removal_of_the_concepts_slots(setup):
    from glmix_viz.atlas.importance import concept_importance
    from glmix_viz.atlas.read import open_atlas
    from glmix_viz.images import load_image
    from glmix_viz.probe import GroupingProbe
    from glmix_viz.slots import intervene
    from glmix_viz.images import to_tensor

    folder, dataset, model = setup
    result = concept_importance(folder, model, dataset, limit=1, resamples=20, progress=False, write=False)
    atlas = open_atlas(folder)
    image_id, path = atlas.images["ids"][0], atlas.images["paths"][0]
    image = load_image(path)
    with GroupingProbe(model, [BLOCK]) as probe:
        model(to_tensor(image, size=64))
    concept, _ = atlas.slot_concepts(BLOCK, probe[BLOCK])
    present = np.flatnonzero(dataset.image_labels(image_id) > 0.5)
    names = atlas.class_names[1:] if len(atlas.class_names) == 5 else atlas.class_names
    checked = 0
    for k, classes in enumerate(result[BLOCK]):
        slots = [int(s) for s in np.flatnonzero(concept == k)]
        for c in present:
            entry = classes[names[c]]
            assert entry["images"] == 1
            if not slots:
                assert entry["mean"] == 0.0 and entry["with_concept"] == 0
            elif len(slots) < len(concept):
                expected = intervene(model, image, BLOCK, remove=slots, input_size=64).change[c]
                assert entry["mean"] == pytest.approx(expected, abs=1e-6) and entry["with_concept"] == 1
                checked += 1
    assert checked >= 1
    assert result["failures"] == []


def test_importance_is_written_beside_purity(setup):
    from glmix_viz.atlas.importance import concept_importance

    folder, dataset, model = setup
    concept_importance(folder, model, dataset, resamples=20, progress=False)
    data = json.loads((Path(folder) / "atlas.json").read_text())
    block = data["blocks"][0]
    assert "purity" in block and block["importance"]["unit"].startswith("probability")
    entries = [e for concept in block["concepts"] for e in concept["importance"].values()]
    assert entries and all(e["ci95"][0] <= e["mean"] + 1e-9 and e["mean"] <= e["ci95"][1] + 1e-9 for e in entries
                           if e["images"] > 1 and not np.isnan(e["ci95"][0]))


def test_atlas_tab_shows_importance_in_points(setup):
    from glmix_viz.app.tabs.atlas import importance_text
    from glmix_viz.atlas.read import open_atlas

    folder, _, _ = setup
    atlas = open_atlas(folder)
    entry = atlas.block(BLOCK)["concepts"][0]
    text = importance_text(atlas, BLOCK, 0)
    if entry.get("importance"):
        worst = min(entry["importance"].items(), key=lambda item: item[1]["mean"])
        assert text.startswith(f"Removing concept 0 costs {worst[0]} {100 * worst[1]['mean']:+.1f} points")
    else:
        assert "--importance" in text


def test_cli_importance_flag(tmp_path):
    from glmix_viz.cli import main
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    make_shapes(tmp_path / "shapes", ShapesConfig(image_size=64), num_train=0, num_val=2, seed=14, progress=False)
    code = main(["atlas", "--voc-root", str(tmp_path / "shapes"), "--block", BLOCK, "--clusters", "2", "--input-size",
                 "64", "--out", str(tmp_path / "atlas"), "--importance", "--resamples", "20", "--examples", "1",
                 "--no-progress"])
    assert code == 0
    block = json.loads((tmp_path / "atlas" / "atlas.json").read_text())["blocks"][0]
    assert "importance" in block and all("importance" in concept for concept in block["concepts"])
