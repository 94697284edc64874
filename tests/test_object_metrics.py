"""The object-centric metrics of glmix_viz.grouping (mBO, merged mBO, data-set-level semantic mIoU), on hand-computed
two-object cases, and their per-block collection on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import glmix_viz.models  # noqa: F401
from glmix_viz.grouping import GroupingSample, object_scores_summary, per_image_object_scores
from glmix_viz.scoring.grouping import (
    mean_best_overlap,
    merge_columns,
    merge_slots,
    overlap_table,
    region_overlaps,
    semantic_miou,
    slot_class_overlaps,
)
from glmix_viz.slots.resize import upsample_labels

# Two objects on a 4x4 image; slot 0 covers object 1 and two background pixels, slot 2 is exactly object 2.
INSTANCES = np.array([[1, 1, 0, 0],
                      [1, 1, 0, 0],
                      [0, 0, 2, 2],
                      [0, 0, 2, 2]])
SLOTS = np.array([[0, 0, 1, 1],
                  [0, 0, 1, 1],
                  [0, 1, 2, 2],
                  [0, 1, 2, 2]])


def test_mbo_of_two_objects_by_hand():
    # object 1 (4 px) vs slot 0 (6 px): 4 / 6; object 2 vs slot 2: 4 / 4. mBO = (2/3 + 1) / 2
    ids, regions, iou = region_overlaps(SLOTS, INSTANCES)
    assert ids.tolist() == [1, 2] and regions.tolist() == [0, 1, 2]
    assert iou[0].tolist() == pytest.approx([4 / 6, 0.0, 0.0])
    assert mean_best_overlap(SLOTS, INSTANCES) == pytest.approx(5 / 6)


def test_class_level_mbo_merges_the_instances_of_a_class():
    # both objects of one class: the class region (8 px) best matches slot 2 (4 / 8) over slot 0 (4 / 10)
    same_class = (INSTANCES > 0).astype(np.uint8) * 3
    assert mean_best_overlap(SLOTS, same_class) == pytest.approx(0.5)
    # two classes: the class level equals the instance level
    assert mean_best_overlap(SLOTS, INSTANCES * 2) == pytest.approx(5 / 6)


def test_mbo_leaves_ignore_pixels_out():
    targets = INSTANCES.copy()
    targets[2, 0] = 255  # slot 0 loses one background pixel: 4 / 5
    assert mean_best_overlap(SLOTS, targets) == pytest.approx((4 / 5 + 1) / 2)
    # a 2x2 grouping of the quadrants up-sampled to the mask: both objects matched exactly
    assert mean_best_overlap(upsample_labels(np.array([[0, 1], [2, 3]]), (4, 4)), INSTANCES) == pytest.approx(1.0)
    assert np.isnan(mean_best_overlap(SLOTS, np.zeros((4, 4), np.uint8)))


def test_merging_slots_by_feature_similarity_by_hand():
    # slots 0 and 1 point the same way, slot 2 elsewhere: at K=2 the groups are {0, 1} and {2}
    features = np.array([[1.0, 0.1], [1.0, 0.0], [0.0, 1.0]])
    merges = merge_slots(features, [2, 3, 8])
    assert merges[2][0] == merges[2][1] != merges[2][2]
    assert len(set(merges[3].tolist())) == 3 and len(set(merges[8].tolist())) == 3
    # merged regions: object 1 vs group {0, 1} (12 px): 4 / 12; object 2 vs {2}: 1. mBO = (1/3 + 1) / 2
    assert mean_best_overlap(merges[2][SLOTS], INSTANCES) == pytest.approx(2 / 3)


def test_merging_leaves_unused_slots_out():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.05], [0.0, 0.0]])
    merges = merge_slots(features, [2], used=np.array([True, True, False, True]))
    assert merges[2][2] == -1
    assert len(set(merges[2][[0, 1, 3]].tolist())) == 2


def test_semantic_miou_of_two_images_by_hand():
    # two images, two slots each; classes 0 background, 1 circle, 2 square. Slot features fall in three tight
    # clusters: A (slots 0, 2), B (slot 1), C (slot 3).
    features = np.array([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [0.0, 10.0]])
    overlaps = np.array([[6, 0, 0],   # image 1, slot 0: background
                         [2, 8, 0],   # image 1, slot 1: a circle with 2 background pixels
                         [7, 0, 1],   # image 2, slot 2: background with 1 square pixel
                         [0, 0, 8]])  # image 2, slot 3: the square
    scores = semantic_miou(features, overlaps, clusters=3)
    # Hungarian on the cluster x class overlap: A -> background, B -> circle, C -> square
    assert scores.slot_class.tolist() == [0, 1, 0, 2]
    # background: TP 13, gt 15, predicted 14 -> 13 / 16; circle: TP 8, gt 8, predicted 10 -> 8 / 10;
    # square: TP 8, gt 9, predicted 8 -> 8 / 9
    assert scores.iou.tolist() == pytest.approx([13 / 16, 8 / 10, 8 / 9])
    assert scores.miou == pytest.approx((13 / 16 + 8 / 10 + 8 / 9) / 3)
    per_image = scores.per_image_confusion(overlaps, np.array([0, 0, 1, 1]), 2)
    assert per_image.sum(axis=0).tolist() == scores.confusion.tolist()
    assert per_image[0].tolist() == [[6, 2, 0], [0, 8, 0], [0, 0, 0]]


def test_semantic_miou_counts_unmatched_clusters_as_background():
    features = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    overlaps = np.array([[5, 0], [0, 5], [1, 3], [4, 0]])
    # four clusters, two classes: the circle takes the cluster with most circle pixels (slot 1), the background the
    # one with most background (slot 0); slots 2 and 3 are unmatched -> background
    scores = semantic_miou(features, overlaps, clusters=4)
    assert scores.slot_class.tolist() == [0, 1, 0, 0]
    assert scores.iou.tolist() == pytest.approx([10 / 13, 5 / 8])
    with pytest.raises(ValueError, match="cannot make 5 clusters"):
        semantic_miou(features, overlaps, clusters=5)


def test_slot_class_overlaps_counts_pixels_and_skips_ignore():
    classes = INSTANCES.copy()
    classes[0, 0] = 255
    table = slot_class_overlaps(SLOTS, classes, num_slots=4, num_classes=3)
    assert table.tolist() == [[2, 3, 0], [6, 0, 0], [0, 0, 4], [0, 0, 0]]
    with pytest.raises(ValueError, match="outside"):
        slot_class_overlaps(SLOTS, INSTANCES * 3, num_slots=4, num_classes=3)


def test_object_scores_of_a_tiny_model():
    torch.manual_seed(0)
    model = timm.create_model("glnet_tiny", num_classes=2, num_slots=4).eval()
    instances = np.zeros((64, 64), np.uint8)
    instances[:32, :32] = 1  # objects on two quadrants of the 2x2 slot grid: the grid control scores 1
    instances[32:, 32:] = 2
    classes = np.where(instances > 0, instances, 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    samples = [GroupingSample(str(i), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), instances, classes)
               for i in range(3)]
    scores = per_image_object_scores(model, samples, input_size=64, merge_sizes=(2, 3))
    assert list(scores.blocks) == glmix_viz.glmix_block_names(model) and scores.num_classes == 3
    summary = object_scores_summary(scores, clusters=3)
    for name, block in scores.blocks.items():
        assert block.grid["instance"].tolist() == pytest.approx([1.0] * 3)
        assert block.grid["class"].tolist() == pytest.approx([1.0] * 3)
        assert block.features.shape[0] == block.overlaps.shape[0] == block.regions.sum()
        assert block.overlaps.sum() == 3 * 64 * 64  # every pixel belongs to exactly one slot
        for level in ("instance", "class"):
            assert np.all((block.mbo[level] >= 0) & (block.mbo[level] <= 1))
        assert np.all(block.merged_regions[2] <= 2) and np.all(block.merged_regions[2] <= block.regions)
        assert summary[name]["slots"] == 4 and summary[name]["semantic"]["clusters"] == 3
        assert 0.0 <= summary[name]["semantic"]["miou"] <= 1.0
    by_assignment = per_image_object_scores(model, samples, input_size=64, merge_sizes=(2,), merge_on="assignments")
    name = next(iter(scores.blocks))
    assert by_assignment.blocks[name].mbo["instance"].tolist() == scores.blocks[name].mbo["instance"].tolist()
    with pytest.raises(ValueError, match="merge_on"):
        per_image_object_scores(model, samples, input_size=64, merge_on="colours")


def test_merged_columns_equal_the_overlaps_of_the_merged_grouping():
    groups = np.array([0, 0, 1])
    target_ids, region_ids, counts = overlap_table(SLOTS, INSTANCES)
    assert counts.tolist() == [[2, 6, 0], [4, 0, 0], [0, 0, 4]]  # background, object 1, object 2 x slots 0, 1, 2
    merged = merge_columns(region_ids, counts, groups)
    assert merged.tolist() == overlap_table(groups[SLOTS], INSTANCES)[2].tolist() == [[8, 0], [4, 0], [0, 4]]
