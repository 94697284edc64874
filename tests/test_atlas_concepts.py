"""The atlas's second pass (``describe_concepts``) on chunk files written by hand: the typical regions of a concept
are its members nearest the centroid, nearest first, across chunks."""

from __future__ import annotations

import numpy as np

from glmix_viz.atlas.collect import BlockRows, write_chunk
from glmix_viz.atlas.concepts import describe_concepts


class FixedCentroids:
    """What describe_concepts needs of a fitted k-means: ``n_clusters`` and ``transform`` (distances to centroids)."""

    def __init__(self, centroids):
        self.cluster_centers_ = np.asarray(centroids, np.float32)
        self.n_clusters = len(self.cluster_centers_)

    def transform(self, features):
        return np.linalg.norm(features[:, None, :] - self.cluster_centers_[None], axis=2)


def _chunk(path, points, images, slots):
    n = len(points)
    rows = BlockRows(features=np.asarray(points, np.float16), image=np.asarray(images, np.int64),
                     slot=np.asarray(slots, np.int16), area=np.full(n, 0.1, np.float32),
                     confidence=np.full(n, 0.9, np.float32), label=np.full(n, -1, np.int64),
                     label_share=np.ones(n, np.float32), hard=np.zeros((len(set(images)), 2, 2), np.int16))
    write_chunk(path, [rows], [f"img{i}" for i in sorted(set(images))], sorted(set(images)), [])
    return path


def test_typical_regions_are_the_nearest_members_nearest_first(tmp_path):
    # concept 0 around (0, 0), concept 1 around (10, 0); members of concept 0 at distances 3, 0.5, 2 (chunk 1) and
    # 1, 0.25 (chunk 2); concept 1 has two members at distances 1 and 4
    first = _chunk(tmp_path / "chunk-00000.npz", [[3, 0], [0, 0.5], [10, 1], [2, 0]], [0, 0, 1, 1], [0, 1, 2, 3])
    second = _chunk(tmp_path / "chunk-00001.npz", [[0, 1], [6, 0], [0.25, 0]], [2, 2, 3], [4, 5, 6])
    stats = describe_concepts([first, second], 0, FixedCentroids([[0, 0], [10, 0]]), 0, examples=2)
    assert stats.sizes.tolist() == [5, 2]
    nearest = [(round(distance, 3), image, slot) for distance, image, slot, _ in stats.typical[0]]
    assert nearest == [(0.25, 3, 6), (0.5, 0, 1)]  # chunk 1 alone holds three members: its farthest stay out
    assert [(round(d, 3), image, slot) for d, image, slot, _ in stats.typical[1]] == [(1.0, 1, 2), (4.0, 2, 5)]


def _labelled_chunk(path, points, images, labels):
    n = len(points)
    rows = BlockRows(features=np.asarray(points, np.float16), image=np.asarray(images, np.int64),
                     slot=np.arange(n, dtype=np.int16), area=np.full(n, 0.1, np.float32),
                     confidence=np.full(n, 0.9, np.float32), label=np.asarray(labels, np.int64),
                     label_share=np.ones(n, np.float32), hard=np.zeros((len(set(images)), 2, 2), np.int16))
    write_chunk(path, [rows], [f"img{i}" for i in sorted(set(images))], sorted(set(images)), [])
    return path


def test_class_table_labelled_regions_images_and_map_sample_by_hand(tmp_path):
    # concept 0 near (0, 0): classes 1, 1, 2 and one unlabelled (-1); concept 1 near (10, 0): class 0 and class 3,
    # which is not a class of a 3-class set and so counts as unlabelled
    first = _labelled_chunk(tmp_path / "chunk-00000.npz", [[0, 0], [1, 0], [9, 0]], [0, 0, 1], [1, 1, 0])
    second = _labelled_chunk(tmp_path / "chunk-00001.npz", [[0, 1], [0, 2], [11, 0]], [2, 3, 3], [2, -1, 3])
    stats = describe_concepts([first, second], 0, FixedCentroids([[0, 0], [10, 0]]), 3, examples=1,
                              map_points=4, seed=0)
    assert stats.sizes.tolist() == [4, 2] and stats.images == 4
    assert stats.table.tolist() == [[0, 2, 1], [1, 0, 0]]
    assert sorted(zip(stats.labelled["image"].tolist(), stats.labelled["concept"].tolist(),
                      stats.labelled["label"].tolist())) == [(0, 0, 1), (0, 0, 1), (1, 1, 0), (2, 0, 2)]
    assert len(stats.sample["concept"]) == 4 and set(stats.sample) >= {"features", "concept", "label", "image", "slot"}
    everything = describe_concepts([first, second], 0, FixedCentroids([[0, 0], [10, 0]]), 3, map_points=100)
    assert sorted(everything.sample["image"].tolist()) == [0, 0, 1, 2, 3, 3]  # fewer regions than points: all


def test_fit_concepts_finds_two_separate_groups_across_chunks_and_refuses_too_few_regions(tmp_path):
    import pytest

    from glmix_viz.atlas.concepts import fit_concepts
    from glmix_viz.errors import DataError

    rng = np.random.default_rng(0)
    near = rng.normal(0, 0.1, (7, 2))
    far = rng.normal(0, 0.1, (6, 2)) + [10, 10]
    first = _labelled_chunk(tmp_path / "chunk-00000.npz", np.vstack([near[:4], far[:2]]), [0] * 6, [-1] * 6)
    second = _labelled_chunk(tmp_path / "chunk-00001.npz", np.vstack([near[4:], far[2:]]), [1] * 7, [-1] * 7)
    kmeans = fit_concepts([first, second], 0, 2, seed=0, batch_rows=3)  # batches cross the chunks, short tails
    near_concepts = set(kmeans.predict(near.astype(np.float32)).tolist())
    far_concepts = set(kmeans.predict(far.astype(np.float32)).tolist())
    assert len(near_concepts) == len(far_concepts) == 1 and near_concepts != far_concepts
    assert kmeans.cluster_centers_.shape == (2, 2)
    with pytest.raises(DataError, match="only 13 regions for 14 concepts"):
        fit_concepts([first, second], 0, 14)


def test_fitting_and_the_map_sample_are_reproducible_and_row_batches_keep_every_row_in_order(tmp_path):
    from glmix_viz.atlas.concepts import _row_batches, fit_concepts

    rng = np.random.default_rng(1)
    points = rng.normal(0, 1, (13, 2))
    first = _labelled_chunk(tmp_path / "chunk-00000.npz", points[:6], [0] * 6, [-1] * 6)
    second = _labelled_chunk(tmp_path / "chunk-00001.npz", points[6:], [1] * 7, [-1] * 7)
    batches = list(_row_batches([first, second], 0, 4))
    assert [len(batch) for batch in batches] == [4, 4, 4, 1]
    np.testing.assert_array_equal(np.concatenate(batches), points.astype(np.float16).astype(np.float32))
    one, two = (fit_concepts([first, second], 0, 3, seed=4, batch_rows=4) for _ in range(2))
    np.testing.assert_array_equal(one.cluster_centers_, two.cluster_centers_)  # same files and seed: same centroids
    assert fit_concepts([first, second], 0, 13).n_clusters == 13  # as many regions as concepts is enough
    samples = [describe_concepts([first, second], 0, one, 0, map_points=5, seed=seed).sample["slot"].tolist()
               for seed in (0, 0, 1)]
    assert samples[0] == samples[1] and len(samples[0]) == 5
