"""segment-train on the runtime: seeded (two runs equal, a resumed run equal to a straight one), the groups and the
refusal of another run's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset
from glmix_viz.segment import train as segment_train
from glmix_viz.segment.model import build_segmenter, load_segmenter
from glmix_viz.segment.train import SegmentTrainConfig, param_groups, train_segmenter


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "voc"
    make_shapes(root, ShapesConfig(image_size=64), num_train=6, num_val=2, seed=11)
    return root


def _config(out: Path, **overrides) -> SegmentTrainConfig:
    settings = dict(out=str(out), backbone="glnet_tiny", decoder_args={"decoder_channels": 16}, epochs=2,
                    batch_size=2, max_steps=2, input_size=64, scale_range=(0.5, 1.5), warmup_steps=2, workers=0,
                    device="cpu", progress=False)
    settings.update(overrides)
    return SegmentTrainConfig(**settings)


def _weights(out: Path) -> dict:
    return load_segmenter(out / "last.safetensors", device="cpu").state_dict()


def test_two_runs_are_equal_and_a_resumed_run_equals_a_straight_one(shapes: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = VOCDataset(shapes, "train")
    train_segmenter(_config(tmp_path / "a"), dataset)
    train_segmenter(_config(tmp_path / "b"), dataset)
    finish_epoch = segment_train._finish_epoch

    def killed_after_saving(*args, **kwargs):
        finish_epoch(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(segment_train, "_finish_epoch", killed_after_saving)
    with pytest.raises(KeyboardInterrupt):  # killed after epoch 1 (of 2) was saved ...
        train_segmenter(_config(tmp_path / "resumed"), dataset)
    monkeypatch.setattr(segment_train, "_finish_epoch", finish_epoch)
    resumed = train_segmenter(_config(tmp_path / "resumed"), dataset)  # ... and run again with the same command
    a, b, c = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "resumed")
    assert set(a) == set(b) == set(c)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)  # seeded augmentation: identical runs
        torch.testing.assert_close(c[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2] and (tmp_path / "resumed" / "last_state.pt").is_file()
    assert log[1]["train_loss"] == pytest.approx(json.loads((tmp_path / "a" / "log.jsonl").read_text()
                                                            .splitlines()[1])["train_loss"], rel=1e-5)
    other_seed = train_segmenter(_config(tmp_path / "seed1", seed=1), dataset)
    assert other_seed["history"][0]["train_loss"] != log[0]["train_loss"]  # the seed does change the run


def test_a_run_with_another_class_count_in_the_same_out_is_refused_in_one_line(shapes: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    three = tmp_path / "three_classes"
    make_shapes(three, ShapesConfig(image_size=64, classes=2), num_train=4, num_val=2, seed=5)
    common = ["--backbone", "glnet_tiny", "--decoder-channels", "16", "--epochs", "1", "--batch-size", "2",
              "--max-steps", "1", "--input-size", "64", "--workers", "0", "--no-progress", "--device", "cpu",
              "--val-split", "none", "--out", str(tmp_path / "run")]
    assert main(["segment-train", "--voc-root", str(shapes), *common]) == 0
    capsys.readouterr()
    assert main(["segment-train", "--voc-root", str(three), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a different run" in err[0] and "'num_classes': 5" in err[0]


def test_groups_keep_the_layout_older_runs_saved(shapes: Path) -> None:
    segmenter = build_segmenter("glnet_tiny", 5, decoder_args={"decoder_channels": 16})
    groups = param_groups(segmenter, SegmentTrainConfig(out="", backbone_lr_ratio=0.1, weight_decay=0.01))
    # the layout the loop saved before it used timm's filter: (part, matrix or not) in the order tensors first come
    layout = {}
    for name, param in segmenter.named_parameters():
        part = "encoder" if name.startswith("encoder.") else "decoder"
        layout.setdefault(f"{part}_{'decay' if param.ndim > 1 else 'no_decay'}", []).append(param)
    assert [g["name"] for g in groups] == list(layout)
    for group in groups:
        assert [id(p) for p in group["params"]] == [id(p) for p in layout[group["name"]]], group["name"]
        assert group["lr_ratio"] == (0.1 if group["name"].startswith("encoder") else 1.0)
        assert group["weight_decay"] == (0.0 if group["name"].endswith("no_decay") else 0.01)
    segmenter.encoder.requires_grad_(False)
    frozen = param_groups(segmenter, SegmentTrainConfig(out="", backbone_lr_ratio=0.0))
    assert [g["name"] for g in frozen] == [name for name in layout if name.startswith("decoder")]
