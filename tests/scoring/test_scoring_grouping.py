"""glmix_viz.scoring.grouping: mBO takes the best overlap, the background is a parameter, purity and object purity,
and the bootstrap of purity over images."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from glmix_viz.scoring.grouping import (
    adjusted_rand_index,
    contingency_scores,
    foreground_ari,
    image_tables,
    mean_best_overlap,
    object_purity,
    object_table,
    overlap_table,
    purity,
    purity_difference,
    purity_statistic,
    semantic_miou,
    table_mbo,
)

# One object (id 1, 8 pixels) on a 4x4 image. Region 0 covers 6 of its pixels (and nothing else), region 1 its
# other 2 plus the 8 background pixels. IoU with region 0: 6 / 8; with region 1: 2 / 14.
TARGETS = np.array([[1, 1, 1, 1],
                    [1, 1, 1, 1],
                    [0, 0, 0, 0],
                    [0, 0, 0, 0]])
REGIONS = np.array([[0, 0, 0, 1],
                    [0, 0, 0, 1],
                    [1, 1, 1, 1],
                    [1, 1, 1, 1]])


def test_mbo_takes_the_best_overlap_not_the_mean():
    assert mean_best_overlap(REGIONS, TARGETS) == pytest.approx(6 / 8)
    # the mean over regions would be (6/8 + 2/14) / 2; the mean over regions that touch it the same
    assert mean_best_overlap(REGIONS, TARGETS) != pytest.approx((6 / 8 + 2 / 14) / 2)
    ids, regions, counts = overlap_table(REGIONS, TARGETS)
    assert table_mbo(ids, counts) == pytest.approx(6 / 8)


def test_mbo_averages_over_targets():
    targets = TARGETS.copy()
    targets[2:, :] = 2  # a second object where the background was: region 1 holds 8 of its 8 pixels (IoU 8 / 10)
    assert mean_best_overlap(REGIONS, targets) == pytest.approx((6 / 8 + 8 / 10) / 2)


def test_the_background_id_is_a_parameter():
    # with the object as the background (id 1), the target is the other region: id 0 best matched by region 1
    assert mean_best_overlap(REGIONS, TARGETS, background=1) == pytest.approx(8 / 10)
    # no background: both ids are targets
    assert mean_best_overlap(REGIONS, TARGETS, background=None) == pytest.approx((6 / 8 + 8 / 10) / 2)
    ignored = TARGETS.copy()
    ignored[2:, :] = 9
    assert mean_best_overlap(REGIONS, ignored, ignore=9) == pytest.approx(6 / 8)  # region 1 keeps 2 pixels: 2 / 8


def test_maps_of_another_size_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        mean_best_overlap(REGIONS[:2], TARGETS)


def test_ari_is_scikit_learns_and_foreground_ari_leaves_the_background_out():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 100), rng.integers(0, 3, 100)
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b))
    instances = np.array([[5, 5, 1, 1], [5, 5, 2, 2]])
    groups = np.array([[0, 1, 7, 7], [2, 3, 8, 8]])  # the background (5) split four ways; objects exact
    assert foreground_ari(groups, instances, background=5) == pytest.approx(1.0)
    assert foreground_ari(groups, instances, background=None) < 1.0


def test_purity_and_object_purity_leave_the_background_out():
    # columns: background, cat, dog. Concept 0: 9 background + 1 cat; concept 1: 2 cats, 2 dogs.
    table = np.array([[9, 1, 0], [0, 2, 2]])
    assert purity(table) == pytest.approx((9 + 2) / 14)
    # without the background column: concept 0 holds 1 cat (pure), concept 1 half and half: (1 + 2) / 5
    assert object_purity(table, background=0) == pytest.approx(3 / 5)
    assert object_purity(table, background=None) == pytest.approx(purity(table))
    # the background anywhere: here column 2 ("dog" as background) leaves background + cat
    assert object_purity(table, background=2) == pytest.approx((9 + 2) / 12)
    assert object_table(table, 0).tolist() == [[1, 0], [2, 2]]
    assert contingency_scores(object_table(table, 0))["majority_baseline"] == pytest.approx(3 / 5)


def _regions(per_image_labels):
    """(image, concept, label) triplets: image i holds regions of concept 0 with the given labels."""
    image, concept, label = [], [], []
    for index, labels in enumerate(per_image_labels):
        for klass, k in labels:
            image.append(index)
            concept.append(k)
            label.append(klass)
    return np.array(image), np.array(concept), np.array(label)


def test_image_tables_sum_to_the_table_and_the_statistic_is_its_purity():
    image, concept, label = _regions([[(0, 0), (1, 0)], [(1, 1), (1, 1)], [(2, 1), (-1, 0)]])
    tables = image_tables(image, concept, label, images=4, concepts=2, classes=3)
    assert tables.shape == (4, 6) and tables.sum() == 5  # the unlabelled region (-1) left out
    statistic = purity_statistic(tables, 2, 3)
    whole = np.asarray(tables.sum(axis=0)).reshape(2, 3)
    assert statistic(np.ones(4)) == pytest.approx(purity(whole))
    # weights are resamples: image 1 drawn twice, the others never -> its table alone (pure)
    assert statistic(np.array([[0.0, 2.0, 0.0, 0.0]]))[0] == pytest.approx(1.0)
    assert purity_statistic(tables, 2, 3, background=1, objects=True)(np.ones(4)) == pytest.approx(
        object_purity(whole, 1))


def test_purity_difference_is_paired_and_signed():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    images = np.repeat(np.arange(100), 3)
    good = image_tables(images, labels, labels, images=100, concepts=3, classes=3)  # concept = class: pure
    mixed = image_tables(images, rng.integers(0, 3, 300), labels, images=100, concepts=3, classes=3)
    forward = purity_difference(good, mixed, 3, 3, resamples=300)
    assert forward["mean"] > 0.4 and forward["ci95"][0] > 0.3 and forward["images"] == 100
    backward = purity_difference(mixed, good, 3, 3, resamples=300)
    assert backward["mean"] == pytest.approx(-forward["mean"]) and backward["ci95"][1] < 0
    same = purity_difference(good, good, 3, 3, resamples=100)
    assert same == {"mean": 0.0, "ci95": [0.0, 0.0], "images": 100}


def test_semantic_miou_counts_unmatched_clusters_as_the_given_background():
    # three well-separated slot features; classes: 0 = object A, 1 = background, 2 = object B; four clusters
    features = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    overlaps = np.array([[5, 1, 0], [0, 4, 0], [0, 0, 3], [0, 2, 0]])
    scores = semantic_miou(features, overlaps, clusters=4, background=1)
    assert sorted(scores.cluster_class.tolist()) == [0, 1, 1, 2]
    # class 0: 5 right, 1 background pixel of slot 0 called class 0; class 1: 6 of 7; class 2 exact
    assert scores.iou.tolist() == pytest.approx([5 / 6, 6 / 7, 3 / 3])
