"""segment-train draws anew each epoch (batch order, augmentations, dropout / drop-path randomness) and draws the same
in two runs with one seed: the per-epoch seeding neither repeats epoch 1 nor depends on anything but (seed, epoch)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset
from glmix_viz.segment import train as segment_train
from glmix_viz.segment.train import SegmentTrainConfig, train_segmenter


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "voc"
    make_shapes(root, ShapesConfig(image_size=64), num_train=6, num_val=0, seed=13)
    return root


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.detach().cpu().numpy().tobytes()).hexdigest()[:12]


def _record_run(out: Path, dataset, monkeypatch: pytest.MonkeyPatch) -> list:
    """Per epoch: the random draw torch makes at its start, and the digest of every training batch."""
    epochs = []

    class Recording:  # stands in for the epoch's progress bar, which wraps the training loader
        def __init__(self, iterable, desc="", **_):
            self.iterable, self.desc = iterable, desc

        def __iter__(self):
            if not self.desc.startswith("epoch"):
                yield from self.iterable
                return
            epoch = {"draw": torch.rand(3).tolist(), "batches": [], "images": []}
            epochs.append(epoch)
            for images, labels in self.iterable:
                epoch["batches"].append((_digest(images), _digest(labels)))
                epoch["images"] += [_digest(image) for image in images]
                yield images, labels

        def set_postfix(self, **_):
            pass

        def close(self):
            pass

    monkeypatch.setattr(segment_train, "tqdm", Recording)
    config = SegmentTrainConfig(out=str(out), backbone="glnet_tiny", decoder_args={"decoder_channels": 16}, epochs=2,
                                batch_size=2, max_steps=3, input_size=64, scale_range=(0.5, 1.5), warmup_steps=1,
                                workers=0, device="cpu", progress=False, seed=5)
    train_segmenter(config, dataset)
    return epochs


def test_each_epoch_draws_anew_and_two_runs_draw_alike(shapes: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = VOCDataset(shapes, "train")
    first = _record_run(tmp_path / "a", dataset, monkeypatch)
    second = _record_run(tmp_path / "b", dataset, monkeypatch)
    assert len(first) == 2 and all(len(epoch["batches"]) == 3 for epoch in first)
    assert first == second  # one seed, one run
    one, two = first
    assert one["draw"] != two["draw"]  # dropout / drop-path randomness is not epoch 1's again
    assert len(set(one["images"])) == len(set(two["images"])) == 6  # every training image once an epoch
    assert set(one["images"]).isdisjoint(two["images"])  # each image augmented anew
    assert set(one["batches"]).isdisjoint(two["batches"])
