"""The pseudo-label batch job: outputs, bad items, resume, killed runs, shards, worker processes, classifier check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import glmix_viz.models  # noqa: F401  (registers glnet_tiny)
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.data.voc import VOCDataset
from glmix_viz.crf import CRFParams
from glmix_viz.labels import load_label_png, voc_palette
from glmix_viz.errors import CheckpointError
from glmix_viz.evaluate import evaluate_predictions
from glmix_viz.pseudo.pipeline import run_pseudo_label
from glmix_viz.pseudo.settings import ScoreSettings
from glmix_viz.runtime.distributed import shard_ids

NUM_IMAGES = 6


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=96), num_train=1, num_val=NUM_IMAGES, seed=3, progress=False)
    return root


@pytest.fixture()
def dataset_copy(shapes_root, tmp_path) -> Path:
    """A private copy of the shapes set, for tests that break files."""
    return Path(shutil.copytree(shapes_root, tmp_path / "data"))


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("glnet_tiny", num_classes=4).eval()


def _run(dataset, out, model, settings=ScoreSettings(method="cam", bg_param=0.05), **kwargs):
    kwargs = {"workers": 0, "progress": False, **kwargs}
    return run_pseudo_label(dataset, out, model, settings, **kwargs)


def test_without_settings_the_default_method_runs_with_its_own_threshold(shapes_root, model, tmp_path):
    """No settings: the default method (slot_pool) and its own background threshold 0.75, not a pinned one."""
    dataset = VOCDataset(shapes_root, "val")
    summary = _run(dataset, tmp_path / "out", model, settings=None, crf=None, save_scores=True, ids=dataset.ids[:2])
    assert summary["counts"]["done"] == 2
    assert summary["score_settings"]["method"] == "slot_pool" and summary["score_settings"]["bg_param"] == 0.75
    for image_id in dataset.ids[:2]:
        stored = np.load(tmp_path / "out" / "scores" / f"{image_id}.npz")
        scores = stored["scores"].astype(np.float32)
        assert np.all(scores[0] == 0.75)  # the background channel: the method's threshold (exact in float16)
        expected = stored["class_indices"][scores.argmax(axis=0)]
        top_two = np.sort(scores, axis=0)[-2:]
        clear = top_two[1] - top_two[0] > 2e-3  # the stored scores are float16: leave near-ties out
        assert clear.mean() > 0.9 and len(np.unique(expected[clear])) > 1  # background and some object
        assert np.array_equal(load_label_png(tmp_path / "out" / f"{image_id}.png")[clear], expected[clear])


def test_outputs_are_palette_pngs_of_the_exact_image_size(shapes_root, model, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    summary = _run(dataset, tmp_path / "out", model, save_scores=True, crf=CRFParams(iterations=3))
    assert summary["status"] == "ok" and summary["counts"] == {"total": 6, "done": 6, "skipped": 0, "failed": 0}
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["counts"]["done"] == 6
    for image_id in dataset.ids:
        with Image.open(tmp_path / "out" / f"{image_id}.png") as png:
            assert png.mode == "P"
            assert png.size == (96, 96)
            palette = np.array(png.getpalette()[: 21 * 3]).reshape(21, 3)
            labels = np.array(png)
        assert np.array_equal(palette, voc_palette(21))
        present = set((np.flatnonzero(dataset.image_labels(image_id)) + 1).tolist())
        assert set(np.unique(labels).tolist()) <= {0} | present
        stored = np.load(tmp_path / "out" / "scores" / f"{image_id}.npz")
        assert stored["scores"].shape == (len(present) + 1, 96, 96)
        assert stored["class_indices"].tolist() == [0, *sorted(present)]
        channels = np.searchsorted(stored["class_indices"], labels)
        refined = stored["crf"]  # float16: the label's channel holds the maximum (rounding is monotone)
        assert np.array_equal(np.take_along_axis(refined, channels[None].astype(np.int64), 0)[0], refined.max(0))
    timing = summary["timing"]
    assert timing["images_per_s"] > 0 and timing["network_s"] > 0 and timing["refine_s"] > 0


def test_corrupt_image_and_missing_annotation_are_reported_and_skipped(dataset_copy, model, tmp_path):
    dataset = VOCDataset(dataset_copy, "val")
    corrupt, unlabelled = dataset.ids[1], dataset.ids[4]
    dataset.image_path(corrupt).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    dataset.annotation_path(unlabelled).unlink()
    summary = _run(dataset, tmp_path / "out", model, crf=None)
    assert summary["status"] == "failed"
    assert summary["counts"] == {"total": 6, "done": 4, "skipped": 0, "failed": 2}
    reasons = {failure["id"]: failure["reason"] for failure in summary["failures"]}
    assert set(reasons) == {corrupt, unlabelled}
    assert corrupt in reasons[corrupt] and "decode" in reasons[corrupt]
    assert "annotation" in reasons[unlabelled] and unlabelled in reasons[unlabelled]
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["failures"] == summary["failures"]
    assert sorted(path.stem for path in (tmp_path / "out").glob("*.png")) == sorted(set(dataset.ids) - set(reasons))


def test_rerun_resumes_and_overwrite_redoes(shapes_root, model, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    out = tmp_path / "out"
    _run(dataset, out, model, crf=None)
    before = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    again = _run(dataset, out, model, crf=None)
    assert again["counts"] == {"total": 6, "done": 0, "skipped": 6, "failed": 0}
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")} == before
    redone = _run(dataset, out, model, crf=None, overwrite=True)
    assert redone["counts"]["done"] == 6 and redone["counts"]["skipped"] == 0
    assert all(path.stat().st_mtime_ns != before[path.name] for path in out.glob("*.png"))
    with_scores = _run(dataset, out, model, crf=None, save_scores=True)  # the .npz files are missing: redo
    assert with_scores["counts"]["done"] == 6


def test_a_killed_run_leaves_nothing_that_counts_as_done(shapes_root, model, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    out = tmp_path / "out"
    _run(dataset, out, model, crf=None)
    victim = dataset.ids[2]
    reference = load_label_png(out / f"{victim}.png")
    (out / f"{victim}.png").unlink()
    leftover = out / f".{victim}.png.0123456789ab.tmp"  # what a run killed mid-write leaves
    leftover.write_bytes(b"\x89PNG\r\n\x1a\n half")
    summary = _run(dataset, out, model, crf=None)
    assert summary["counts"]["done"] == 1 and summary["counts"]["skipped"] == 5
    assert np.array_equal(load_label_png(out / f"{victim}.png"), reference)
    assert not leftover.exists()


def test_shards_are_disjoint_and_complete_and_evaluate_as_one_folder(shapes_root, model, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    shared, whole = tmp_path / "shared", tmp_path / "whole"
    first = _run(dataset, shared, model, crf=None, shard="1/2", batch_size=1)
    second = _run(dataset, shared, model, crf=None, shard="2/2", batch_size=1)
    _run(dataset, whole, model, crf=None, batch_size=1)
    ids_1, ids_2 = shard_ids(dataset.ids, "1/2"), shard_ids(dataset.ids, "2/2")
    assert not set(ids_1) & set(ids_2) and sorted(ids_1 + ids_2) == sorted(dataset.ids)
    assert first["counts"]["done"] == len(ids_1) and second["counts"]["done"] == len(ids_2)
    assert (shared / "summary.shard-1-of-2.json").is_file() and (shared / "summary.shard-2-of-2.json").is_file()
    assert sorted(path.stem for path in shared.glob("*.png")) == sorted(dataset.ids)
    sharded_scores = evaluate_predictions(dataset, shared)
    whole_scores = evaluate_predictions(dataset, whole)
    assert sharded_scores["num_images"] == 6 and not sharded_scores["failures"]
    for key in ("miou", "pixel_accuracy", "mean_accuracy", "per_class"):
        assert sharded_scores[key] == whole_scores[key]


def test_worker_processes_write_what_the_main_process_writes(shapes_root, model, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    inline = _run(dataset, tmp_path / "inline", model, crf=CRFParams(iterations=2), workers=0)
    pooled = _run(dataset, tmp_path / "pooled", model, crf=CRFParams(iterations=2), workers=1)
    assert inline["counts"] == pooled["counts"] and pooled["counts"]["done"] == 6
    for image_id in dataset.ids:
        assert np.array_equal(load_label_png(tmp_path / "inline" / f"{image_id}.png"),
                              load_label_png(tmp_path / "pooled" / f"{image_id}.png"))


def test_a_classifier_that_does_not_fit_is_refused(shapes_root, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    imagenet = timm.create_model("glnet_tiny", num_classes=1000)
    with pytest.raises(CheckpointError) as error:
        _run(dataset, tmp_path / "out", imagenet)
    assert str(error.value) == (
        "model has a 1000-class ImageNet head; pseudo-label needs a multi-label head for the data set's 4 classes: "
        "fine-tune it first (glmix-viz finetune ...)"
    )
    with pytest.raises(CheckpointError, match="3-class head without class names but the data set has 4"):
        _run(dataset, tmp_path / "out", timm.create_model("glnet_tiny", num_classes=3))
    assert not (tmp_path / "out").exists()


def test_evaluate_reports_missing_predictions(shapes_root, model, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    _run(dataset, tmp_path / "out", model, crf=None)
    gone = dataset.ids[0]
    (tmp_path / "out" / f"{gone}.png").unlink()
    strict = evaluate_predictions(dataset, tmp_path / "out")
    assert strict["missing_predictions"] == [gone] and strict["num_failed"] == 1 and strict["num_images"] == 5
    lenient = evaluate_predictions(dataset, tmp_path / "out", missing="skip")
    assert lenient["missing_predictions"] == [gone] and lenient["num_failed"] == 0
    assert lenient["miou"] == strict["miou"]


def test_an_interrupted_run_writes_its_summary_before_the_exception_propagates(shapes_root, model, tmp_path,
                                                                               monkeypatch):
    import glmix_viz.pseudo.pipeline as pipeline

    dataset = VOCDataset(shapes_root, "val")
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = pipeline.score_images
    monkeypatch.setattr(pipeline, "score_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(dataset, tmp_path / "out", model, crf=None, batch_size=2)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["counts"]["done"] == 2
    assert summary["timing"]["wall_s"] > 0 and summary["finished"]
    resumed = _run(dataset, tmp_path / "out", model, crf=None, batch_size=2)  # the rerun does the rest
    assert resumed["status"] == "ok" and resumed["counts"] == {"total": 6, "done": 4, "skipped": 2, "failed": 0}


def test_a_batch_that_fails_is_redone_image_by_image(shapes_root, model, tmp_path, monkeypatch):
    import glmix_viz.pseudo.pipeline as pipeline

    dataset = VOCDataset(shapes_root, "val")
    victim = dataset.load_image(dataset.ids[1])
    real = pipeline.compute_scores_batch

    def fails_on_victim(model_, images, labels, settings, **kwargs):
        if any(image is victim or np.array_equal(image, victim) for image in images):
            raise RuntimeError("out of memory (simulated)")
        return real(model_, images, labels, settings, **kwargs)

    monkeypatch.setattr(pipeline, "compute_scores_batch", fails_on_victim)
    summary = _run(dataset, tmp_path / "out", model, crf=None, batch_size=3)
    assert summary["counts"]["done"] == 5 and summary["counts"]["failed"] == 1
    assert summary["failures"] == [{"id": dataset.ids[1], "reason": "score maps failed: RuntimeError: out of memory (simulated)"}]


def test_par_runs_in_worker_processes_like_in_the_main_process_and_stage_shares_add_up(shapes_root, model, tmp_path):
    from glmix_viz.refine import PARParams, par_refine

    dataset = VOCDataset(shapes_root, "val")
    params = PARParams(iterations=3)
    inline = _run(dataset, tmp_path / "inline", model, refinement=params, workers=0, save_scores=True)
    pooled = _run(dataset, tmp_path / "pooled", model, refinement=params, workers=2)
    assert inline["counts"]["done"] == pooled["counts"]["done"] == 6
    assert inline["settings"]["refine"] == "par" and inline["settings"]["crf"]["dilations"] == [1, 2, 4, 8, 12, 24]
    for image_id in dataset.ids:
        assert np.array_equal(load_label_png(tmp_path / "inline" / f"{image_id}.png"),
                              load_label_png(tmp_path / "pooled" / f"{image_id}.png"))
    stored = np.load(tmp_path / "inline" / "scores" / f"{dataset.ids[0]}.npz")
    expected = par_refine(dataset.load_image(dataset.ids[0]), stored["scores"].astype(np.float32), params)
    assert np.allclose(stored["crf"].astype(np.float32), expected, atol=2e-3)  # float16 storage
    shares = pooled["stage_share"]
    assert set(shares) == {"load", "network", "refine", "write"}
    assert abs(sum(shares.values()) - 1) < 0.01 and shares["refine"] > 0 and shares["network"] > 0


def test_a_bad_refinement_is_refused_before_any_image(shapes_root, model, tmp_path):
    dataset = VOCDataset(shapes_root, "val")
    with pytest.raises(ValueError, match="CRFParams, PARParams or None"):
        _run(dataset, tmp_path / "out", model, refinement={"iterations": 3})
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))


def test_the_main_process_path_batches_par_by_size_and_equals_image_by_image():
    """The CUDA path's batching (run here on the CPU): images of two sizes, each refined as par_refine would."""
    from types import SimpleNamespace

    from glmix_viz.pseudo.pipeline import refine_in_main
    from glmix_viz.refine import PARParams, par_refine

    class Timer:
        def timed(self, name):
            import contextlib

            assert name == "refine_s"
            return contextlib.nullcontext()

    rng = np.random.default_rng(0)
    kept = []
    for index, (height, width) in enumerate([(20, 30), (24, 16), (20, 30)]):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        maps = SimpleNamespace(scores=rng.random((3, height, width)).astype(np.float32))
        kept.append((f"i{index}", image, maps))
    params = PARParams(iterations=3)
    refined = refine_in_main(kept, params, "cpu", Timer())
    for (_, image, maps), out in zip(kept, refined):
        assert out.shape == maps.scores.shape
        assert np.allclose(out, par_refine(image, maps.scores, params), atol=1e-5)
