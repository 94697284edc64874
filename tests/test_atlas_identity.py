"""The slot-identity concept source of the atlas (``--concepts slot``): a tiny learned-slot model end to end through
the CLI (with --importance), purity by hand on a hand-built folder and its agreement with grouping-scores'
slot_identity_purity, the refusal of pooled slots, old atlases (no ``concepts`` field) read as k-means, and
slot_concepts giving a slot its own index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from glmix_viz.atlas import build_atlas
from glmix_viz.atlas.collect import BlockRows, write_chunk
from glmix_viz.atlas.read import open_atlas
from glmix_viz.cli import main
from glmix_viz.errors import DataError, GlmixVizError
from glmix_viz.probe import GroupingRecord

SIZE = "48"


def _tiny_checkpoint(path: Path, slot_init: str) -> Path:
    import timm

    import glmix_viz.models  # noqa: F401 - registers the variants with timm
    from glmix_viz.models.loading import save_checkpoint

    torch.manual_seed(0)
    args = dict(slot_init=slot_init, num_slots=4, depth=(1, 1, 1, 1))
    model = timm.create_model("glnet_tiny", num_classes=4, **args).eval()
    save_checkpoint(model, path, variant="glnet_tiny", model_args=args,
                    class_names=["circle", "square", "triangle", "cross"])
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from glmix_viz.data.shapes import ShapesConfig, make_shapes

    root = tmp_path_factory.mktemp("identity")
    make_shapes(root / "shapes", ShapesConfig(image_size=48), num_train=0, num_val=4, seed=3, progress=False)
    return {"root": root, "shapes": root / "shapes", "param": _tiny_checkpoint(root / "param.safetensors", "param"),
            "pooled": _tiny_checkpoint(root / "pooled.safetensors", "ada_avgpool")}


def _atlas(made, checkpoint: str, out: Path, *extra: str) -> int:
    return main(["atlas", "--data", str(made["shapes"]), "--checkpoint", str(made[checkpoint]), "--block", "1",
                 "--out", str(out), "--input-size", SIZE, "--chunk-size", "3", "--examples", "2", "--resamples", "20",
                 "--device", "cpu", "--no-progress", *extra])


@pytest.fixture(scope="module")
def identity_atlas(made):
    out = made["root"] / "atlas"
    assert _atlas(made, "param", out, "--concepts", "slot", "--importance") == 0
    return out


def test_a_learned_slot_model_end_to_end_through_the_cli(identity_atlas, made):
    from glmix_viz.atlas.collect import read_chunk
    from glmix_viz.atlas.map import atlas_map_figure
    from glmix_viz.images import load_image, to_tensor
    from glmix_viz.models.loading import load_model

    data = json.loads((identity_atlas / "atlas.json").read_text())
    assert data["concepts"] == "slot" and data["clusters"] is None
    block = data["blocks"][0]
    assert block["name"] == "stages.1.blocks.0" and block["slots"] == {"num_slots": 4, "slot_init": "param"}
    # one concept per slot, sized by how many regions each slot made
    slots = np.concatenate([read_chunk(p, 0, fields=("slot",))["slot"]
                            for p in sorted((identity_atlas / "features").glob("chunk-*.npz"))])
    assert [c["size"] for c in block["concepts"]] == np.bincount(slots, minlength=4).tolist()
    # a concept's typical regions are regions of that slot, nearest its mean feature first
    for concept in block["concepts"]:
        assert all(e["slot"] == concept["index"] for e in concept["examples"])
        distances = [e["distance"] for e in concept["examples"]]
        assert distances == sorted(distances)
    for key in ("purity", "purity_ci95", "object_purity", "object_purity_ci95", "nmi", "majority_baseline"):
        assert key in block
    assert block["majority_baseline"] <= block["purity"] <= 1
    assert block["importance"]["images"] == 4 and all("importance" in c for c in block["concepts"])
    assert (identity_atlas / block["figure"]).is_file()
    draws = np.load(identity_atlas / "block-0.npz")
    assert draws["centroids"].shape[0] == 4 and len(draws["purity_draws"]) == 20

    atlas = open_atlas(identity_atlas)
    assert atlas.source == "slot" and atlas.concept_title(block["name"], 2).startswith("slot 2: ")
    figure = atlas_map_figure(atlas, block["name"])
    assert figure.data and all(trace.name.startswith("slot ") for trace in figure.data)
    from glmix_viz.app.tabs.atlas import source_text

    assert "slot identity" in source_text(atlas)
    # the explorer's "concept of every slot of the image on screen" is the slot itself
    model = load_model(made["param"], device="cpu")
    from glmix_viz.probe import GroupingProbe

    with GroupingProbe(model, [block["name"]]) as probe:
        model(to_tensor(load_image(atlas.image_path(0)), size=int(SIZE)))
    concept, distance = atlas.slot_concepts(block["name"], probe[block["name"]])
    assert concept.tolist() == [0, 1, 2, 3] and distance.shape == (4,)


def test_clusters_other_than_the_slot_count_is_refused(made, capsys):
    out = made["root"] / "clusters"
    assert _atlas(made, "param", out, "--concepts", "slot", "--clusters", "3") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--clusters 3" in error and "stages.1.blocks.0 has 4" in error
    assert not out.exists()


def test_pooled_slots_are_refused_unless_forced(made, capsys):
    out = made["root"] / "pooled"
    assert _atlas(made, "pooled", out, "--concepts", "slot") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("glmix-viz atlas: error: --concepts slot: block stages.1.blocks.0 pools its slots")
    assert "ada_avgpool" in error and "--allow-pooled-slots" in error
    assert not out.exists()  # refused before any image was read
    assert _atlas(made, "pooled", out, "--concepts", "slot", "--allow-pooled-slots") == 0
    block = json.loads((out / "atlas.json").read_text())["blocks"][0]
    assert block["slots"]["slot_init"] == "ada_avgpool" and len(block["concepts"]) == 4
    # the model-free build refuses the same way, from what the plan recorded
    with pytest.raises(GlmixVizError, match="stages.1.blocks.0 pools its slots"):
        build_atlas(out, None, concepts="slot", progress=False)
    assert _atlas(made, "param", made["root"] / "force", "--allow-pooled-slots") == 2  # only with --concepts slot


def test_regions_collected_before_slots_were_recorded(identity_atlas, made, tmp_path):
    from glmix_viz.atlas import AtlasSettings, collect_regions
    from glmix_viz.data.voc import VOCDataset
    from glmix_viz.models.loading import load_model

    folder = tmp_path / "old"
    shutil.copytree(identity_atlas, folder)
    plan_path = folder / "features" / "plan.json"
    plan = json.loads(plan_path.read_text())
    del plan["slots"]
    plan_path.write_text(json.dumps(plan))
    with pytest.raises(DataError, match="before the blocks' slot initialisations were recorded"):
        build_atlas(folder, None, concepts="slot", progress=False)
    assert build_atlas(folder, 2, resamples=10, progress=False)["concepts"] == "kmeans"  # k-means needs no record
    # collecting again into the folder (nothing left to read) records them
    settings = AtlasSettings(blocks=(1,), input_size=int(SIZE), chunk_size=3)
    collect_regions(VOCDataset(made["shapes"], "val"), load_model(made["param"], device="cpu"), folder, settings,
                    progress=False)
    assert json.loads(plan_path.read_text())["slots"][0] == {"num_slots": 4, "slot_init": "param"}
    assert build_atlas(folder, None, concepts="slot", resamples=10, progress=False)["concepts"] == "slot"


# ------------------------------------------------------------------------------------------------ a hand-built atlas
# 3 images, 3 slots, classes background / circle / square (background 0); (image, slot, class), -1 = no label
REGIONS = [(0, 0, 1), (0, 1, 2), (0, 2, 0),
           (1, 0, 1), (1, 1, 1), (1, 2, 0),
           (2, 0, 2), (2, 1, 2), (2, 2, -1)]
# slot x class: slot 0 [0, 2, 1], slot 1 [0, 1, 2], slot 2 [2, 0, 0]: purity (2 + 2 + 2) / 8;
# without the background column: slot 0 [2, 1], slot 1 [1, 2], slot 2 nothing: object purity (2 + 2) / 6
PURITY, OBJECT_PURITY, BASELINE = 6 / 8, 4 / 6, 3 / 8


def _hand_folder(folder: Path) -> Path:
    from glmix_viz.files import save_png_atomic

    (folder / "features").mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(str(folder / f"img{i}.png"))
        save_png_atomic(folder / f"img{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    image, slot, label = (np.array(column) for column in zip(*REGIONS))
    features = rng.normal(size=(len(REGIONS), 4))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    hard = np.tile(np.array([[0, 1], [2, 2]], np.uint8), (3, 1, 1))
    rows = BlockRows(features=features.astype(np.float16), image=image.astype(np.int64), slot=slot.astype(np.int16),
                     area=np.full(len(REGIONS), 0.25, np.float32), confidence=np.ones(len(REGIONS), np.float32),
                     label=label.astype(np.int16), label_share=np.ones(len(REGIONS), np.float32), hard=hard)
    write_chunk(folder / "features" / "chunk-00000.npz", [rows], ["a", "b", "c"], [0, 1, 2], [])
    (folder / "features" / "plan.json").write_text(json.dumps({
        "format": "glmix-viz-atlas/1", "num_images": 3, "chunk_size": 3, "blocks": ["b"], "feature": "slots_in",
        "slots": [{"num_slots": 3, "slot_init": "param"}], "class_names": ["background", "circle", "square"],
        "background": 0}))
    (folder / "images.json").write_text(json.dumps({"ids": ["a", "b", "c"], "paths": paths}))
    return folder


def test_purity_of_a_hand_built_identity_atlas_and_grouping_scores_agree(tmp_path):
    from glmix_viz.grouping_scores import slot_identity_scores

    folder = _hand_folder(tmp_path / "hand")
    block = build_atlas(folder, None, concepts="slot", resamples=200, seed=4, examples=3, progress=False)["blocks"][0]
    assert [c["size"] for c in block["concepts"]] == [3, 3, 3]
    assert block["purity"] == pytest.approx(PURITY) and block["majority_baseline"] == pytest.approx(BASELINE)
    assert block["object_purity"] == pytest.approx(OBJECT_PURITY)
    assert [c["class"] for c in block["concepts"]] == ["circle", "square", "background"]
    # typical regions: a slot's regions, nearest the mean of its regions' (stored, float16) features first
    with np.load(folder / "features" / "chunk-00000.npz") as chunk:
        features, slots, images = chunk["0/features"].astype(np.float32), chunk["0/slot"], chunk["0/image"]
    for k, concept in enumerate(block["concepts"]):
        own = slots == k
        distance = np.linalg.norm(features[own] - features[own].mean(axis=0), axis=1)
        order = np.argsort(distance, kind="stable")
        assert [(e["image"], e["slot"]) for e in concept["examples"]] == [(int(images[own][i]), k) for i in order]
        np.testing.assert_allclose([e["distance"] for e in concept["examples"]], distance[order], atol=1e-4)
    # grouping-scores on the same regions: the slot's pixel overlaps with the classes, the majority as above
    image, slot, label = (np.array(column) for column in zip(*REGIONS))
    overlaps = np.zeros((len(REGIONS), 3), np.int64)
    for row, c in enumerate(label):
        if c >= 0:
            overlaps[row] = 1
            overlaps[row, c] = 5
    scores = slot_identity_scores({"slot_index": slot, "overlaps": overlaps, "slot_image": image}, 3, 3, 0,
                                  dict(resamples=200, seed=4))
    assert scores["slot_identity_purity"] == pytest.approx(block["object_purity"])
    np.testing.assert_allclose(scores["slot_identity_purity_ci95"], block["object_purity_ci95"])


def test_an_old_atlas_without_the_field_is_kmeans_and_slot_concepts_give_the_index(tmp_path):
    folder = tmp_path / "atlas"
    folder.mkdir()
    np.savez(folder / "block-0.npz", centroids=np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32),
             pca_mean=np.zeros(2, np.float32), pca_components=np.eye(2, dtype=np.float32),
             map_xy=np.zeros((0, 2), np.float32))
    concepts = [{"index": k, "size": size, "share": size / 6, "examples": []} for k, size in enumerate((3, 3, 0))]
    old = {"format": "glmix-viz-atlas/1", "plan": {"feature": "slots_in"}, "class_names": None, "clusters": 3,
           "blocks": [{"name": "b", "data": "block-0.npz", "concepts": concepts, "regions": 6, "images": 2}]}
    (folder / "atlas.json").write_text(json.dumps(old))
    (folder / "images.json").write_text(json.dumps({"ids": ["x", "y"], "paths": ["/x.png", "/y.png"]}))
    # slot 0 looks like centre 1, slot 1 like centre 0, slot 2 like centre 2
    slots = torch.tensor([[[0.0, 2.0], [3.0, 0.0], [0.6, 0.8]]])
    record = GroupingRecord("b", torch.zeros(1, 3, 2, 2), slots, slots)

    atlas = open_atlas(folder)
    assert atlas.source == "kmeans" and atlas.concept_title("b", 0).startswith("concept 0")
    assert atlas.slot_concepts("b", record)[0].tolist() == [1, 0, 2]  # nearest centroid

    (folder / "atlas.json").write_text(json.dumps({**old, "concepts": "slot", "clusters": None}))
    atlas = open_atlas(folder)
    concept, distance = atlas.slot_concepts("b", record)
    assert atlas.source == "slot" and concept.tolist() == [0, 1, 2]  # the slot's own index, not the nearest
    assert distance[0] == pytest.approx(np.sqrt(2)) and distance[1] == pytest.approx(np.sqrt(2))
    assert np.isnan(distance[2])  # slot 2 held no region in the atlas: no centre to be near
    with pytest.raises(ValueError, match="all 3 slots"):
        atlas.nearest_concepts("b", np.ones((2, 2)))

    (folder / "atlas.json").write_text(json.dumps({**old, "concepts": "spectral"}))
    with pytest.raises(DataError, match="unknown concept source 'spectral'"):
        open_atlas(folder)
