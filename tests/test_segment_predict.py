"""``segment`` after a killed run: the stale temporary goes, the interrupted summary says so, a rerun finishes the
rest, and ``--overwrite`` redoes everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset
from glmix_viz.segment import predict
from glmix_viz.segment.model import build_segmenter, load_segmenter, save_segmenter


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("segment")
    make_shapes(root / "voc", ShapesConfig(image_size=64), num_train=1, num_val=4, seed=4)
    torch.manual_seed(0)
    segmenter = build_segmenter("glnet_tiny", 5, decoder_args={"decoder_channels": 16})
    checkpoint = root / "seg.safetensors"
    save_segmenter(segmenter, checkpoint, {"backbone": {"variant": "glnet_tiny", "model_args": {}},
                                           "decoder": "upernet", "decoder_args": {"decoder_channels": 16},
                                           "num_classes": 5, "class_names": list(VOCDataset(root / "voc", "val")
                                                                                 .class_names)})
    return VOCDataset(root / "voc", "val"), checkpoint


def test_a_killed_run_is_summarised_cleaned_up_and_finished_by_the_next(job, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, checkpoint = job
    ids = dataset.ids
    out = tmp_path / "pred"
    out.mkdir()
    stale = out / f".{ids[1]}.png.5e1f0a.tmp"  # what a kill during the atomic write of ids[1] leaves
    stale.write_bytes(b"half a png")
    real_write = predict.save_png_atomic
    written = []

    def killed_at_the_third(path, image):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, image)

    monkeypatch.setattr(predict, "save_png_atomic", killed_at_the_third)
    segmenter = load_segmenter(checkpoint, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        predict.run_segment(dataset, out, segmenter, batch_size=1, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["counts"] == {"total": 4, "done": 2, "skipped": 0,
                                                                        "failed": 0}
    assert not stale.exists()  # cleared by the plan of the killed run itself
    assert sorted(path.name for path in out.glob("*.png")) == sorted(f"{i}.png" for i in ids[:2])

    monkeypatch.setattr(predict, "save_png_atomic", real_write)
    (out / f".{ids[3]}.png.0badc0.tmp").write_bytes(b"")
    common = ["segment", "--checkpoint", str(checkpoint), "--voc-root", str(dataset.root), "--split", "val",
              "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(common) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["counts"] == {"total": 4, "done": 2, "skipped": 2, "failed": 0}
    assert not list(out.glob(".*.tmp")) and len(list(out.glob("*.png"))) == 4
    before = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    assert main([*common, "--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"total": 4, "done": 4, "skipped": 0, "failed": 0}
    assert summary["settings"]["overwrite"] is True
    assert all(path.stat().st_mtime_ns != before[path.name] for path in out.glob("*.png"))
