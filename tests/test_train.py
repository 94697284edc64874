"""Tests of the training loop: metrics, optimiser set-up, a tiny run whose loss falls, checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import timm

import glmix_viz
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.models.loading import load_model, save_checkpoint
from glmix_viz.scoring.classification import mean_average_precision
from glmix_viz.train import (
    TrainConfig,
    augment_batch,
    build_model,
    build_param_groups,
    load_split,
    normalize_batch,
    predict_scores,
    train,
)


# ------------------------------------------------------------------------------------------------------- optimiser
def test_param_groups_decay_only_matrices_and_slot_scale_as_configured():
    model = torch.nn.Module()
    model.linear = torch.nn.Linear(3, 2)
    model.slot_scale = torch.nn.Parameter(torch.tensor(1.0))
    groups = {g["name"]: g for g in build_param_groups([model], 0.05)}
    assert groups["decay"]["params"] == [model.linear.weight] and groups["decay"]["weight_decay"] == 0.05
    assert groups["no_decay"]["params"] == [model.linear.bias] and groups["no_decay"]["weight_decay"] == 0.0
    assert groups["slots"]["params"] == [model.slot_scale] and groups["slots"]["weight_decay"] == 0.0
    official = {g["name"]: g for g in build_param_groups([model], 0.05, recipe="official")}
    assert official["slots"]["weight_decay"] == 0.05
    explicit = {g["name"]: g for g in build_param_groups([model], 0.05, slot_scale_wd=0.3, recipe="official")}
    assert explicit["slots"]["weight_decay"] == 0.3


def test_augmentation_is_seeded_and_dihedral_without_zoom():
    images = torch.randn(4, 3, 8, 8)
    first = augment_batch(images, torch.Generator().manual_seed(1), "shapes")
    again = augment_batch(images, torch.Generator().manual_seed(1), "shapes")
    assert torch.equal(first, again)
    assert torch.equal(augment_batch(images, torch.Generator(), "none"), images)


def test_shapes_augmentation_moves_a_marked_quadrant_where_its_flips_and_turns_say():
    # A bright top-left quadrant; each image's flips and quarter turn are read from the generator's first draws
    # (the documented order: flip x, flip y, turns, zoom, shift x, shift y) and the bright quadrant is predicted by
    # mapping the output quadrant centres through them by hand. A no-op would leave every image top-left.
    batch, side = 64, 32
    images = torch.zeros(batch, 3, side, side)
    images[:, :, : side // 2, : side // 2] = 1.0
    out = augment_batch(images, torch.Generator().manual_seed(5), "shapes")
    draws = torch.rand(batch, 6, generator=torch.Generator().manual_seed(5))
    seen = set()
    for index in range(batch):
        flip_x = -1 if draws[index, 0] < 0.5 else 1
        flip_y = -1 if draws[index, 1] < 0.5 else 1
        turns = min(int(draws[index, 2] * 4), 3)
        cos, sin = [(1, 0), (0, 1), (-1, 0), (0, -1)][turns]
        expected = None
        for qy, qx in ((0, 0), (0, 1), (1, 0), (1, 1)):  # output quadrant -> where its centre samples the input
            x, y = (-0.5, 0.5)[qx], (-0.5, 0.5)[qy]
            source_x = cos * flip_x * x - sin * flip_y * y
            source_y = sin * flip_x * x + cos * flip_y * y
            if source_x < 0 and source_y < 0:
                expected = (qy, qx)
        means = {(qy, qx): float(out[index, 0, qy * 16:(qy + 1) * 16, qx * 16:(qx + 1) * 16].mean())
                 for qy in (0, 1) for qx in (0, 1)}
        assert max(means, key=means.get) == expected and means[expected] > 0.5, index
        seen.add(expected)
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


# ------------------------------------------------------------------------------------------------------ tiny runs
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=64), num_train=32, num_val=16, seed=3, progress=False)
    return root


def _config(data, out, **overrides):
    base = dict(data=str(data), out=str(out), model="glnet_tiny", model_args={"num_slots": 4}, epochs=4,
                batch_size=16, lr=2e-3, warmup_epochs=0, input_size=64, augment="none", seed=0, device="cpu",
                workers=0, progress=False, threads=1, slot_scale_init=10.0)
    base.update(overrides)
    return TrainConfig(**base)


def _bce(model, split):
    with torch.no_grad():
        logits = model(normalize_batch(split.images))
    return float(F.binary_cross_entropy_with_logits(logits, split.labels))


def test_tiny_run_lowers_the_loss_and_checkpoint_round_trips(tiny_data, tmp_path):
    config = _config(tiny_data, tmp_path / "run", epochs=5, slot_mil_weight=0.5)
    torch.manual_seed(config.seed)
    initial, _ = build_model(_config(tiny_data, tmp_path / "unused"), num_classes=4)
    initial.eval()
    train_split = load_split(str(tiny_data), "train", 64, workers=0)
    summary = train(config)
    assert summary["epochs_done"] == 5
    model = load_model(tmp_path / "run" / "last.safetensors", device="cpu")
    assert _bce(model, train_split) < 0.8 * _bce(initial, train_split)

    # the checkpoint carries the classes, the overrides and the training config
    assert model.pretrained_cfg["label_names"] == ["circle", "square", "triangle", "cross"]
    blocks = [block for block in model.modules() if isinstance(block, glmix_viz.models.glnet.GLMixBlock)]
    assert blocks and all(block.num_slots == 4 for block in blocks)
    sidecar = json.loads((tmp_path / "run" / "last.json").read_text())
    assert sidecar["train"]["slot_mil_weight"] == 0.5 and sidecar["train"]["epoch"] == 5
    # the saved weights are the trained ones: recomputed mAP equals the one logged at the last epoch
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    val_split = load_split(str(tiny_data), "val", 64, workers=0)
    scores, targets = predict_scores(model, val_split, torch.device("cpu"))
    assert mean_average_precision(scores, targets)[0] == pytest.approx(log[-1]["val_map"], abs=1e-6)
    # saving the loaded model again and reloading gives the same outputs
    config_record = model.checkpoint_config
    save_checkpoint(model, tmp_path / "copy.safetensors", variant=config_record["variant"],
                    model_args=config_record["model_args"], class_names=model.pretrained_cfg["label_names"])
    again = load_model(tmp_path / "copy.safetensors", device="cpu")
    inputs = normalize_batch(val_split.images[:4])
    with torch.no_grad():
        assert torch.equal(model(inputs), again(inputs))


def test_resume_continues_where_the_interrupted_run_stopped(tiny_data, tmp_path):
    straight = _config(tiny_data, tmp_path / "straight", epochs=3, augment="shapes")
    train(straight)
    # "interrupt" after the first epoch (a time limit that is always exceeded), then run the same command again
    interrupted = _config(tiny_data, tmp_path / "resumed", epochs=3, augment="shapes", max_minutes=1e-9)
    assert train(interrupted)["epochs_done"] == 1
    # a piece that ends where the run already is does nothing
    assert train(_config(tiny_data, tmp_path / "resumed", epochs=3, augment="shapes",
                         stop_after_epoch=1))["epochs_done"] == 1
    resumed = train(_config(tiny_data, tmp_path / "resumed", epochs=3, augment="shapes"))
    assert resumed["epochs_done"] == 3
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2, 3]
    a = load_model(tmp_path / "straight" / "last.safetensors", device="cpu").state_dict()
    b = load_model(tmp_path / "resumed" / "last.safetensors", device="cpu").state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_finetune_keeps_the_backbone_and_replaces_the_head(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("glnet_tiny", num_classes=1000, num_slots=4)
    save_checkpoint(source, tmp_path / "imagenet.safetensors", variant="glnet_tiny", model_args={"num_slots": 4})
    config = _config(tmp_path, tmp_path / "ft", init=str(tmp_path / "imagenet.safetensors"), model_args={})
    model, overrides = build_model(config, num_classes=3)
    assert overrides["num_slots"] == 4 and model.head.out_features == 3
    state, original = model.state_dict(), source.state_dict()
    kept = [k for k in original if not k.startswith("head.") and "slot_scale" not in k]
    assert kept and all(torch.equal(state[k], original[k]) for k in kept)
    assert all(float(v) == 10.0 for k, v in state.items() if k.endswith("slot_scale"))  # the run's --slot-scale-init
    with pytest.raises(glmix_viz.CheckpointError, match="holds a glnet_tiny"):
        build_model(_config(tmp_path, tmp_path / "ft2", init=str(tmp_path / "imagenet.safetensors"), model="glnet_stl"),
                    num_classes=3)
