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
    stats = describe_concepts([first, second], 0, FixedCentroids([[0, 0], [10, 0]]), 0, examples=2, resamples=5)
    assert stats.sizes.tolist() == [5, 2]
    nearest = [(round(distance, 3), image, slot) for distance, image, slot, _ in stats.typical[0]]
    assert nearest == [(0.25, 3, 6), (0.5, 0, 1)]  # chunk 1 alone holds three members: its farthest stay out
    assert [(round(d, 3), image, slot) for d, image, slot, _ in stats.typical[1]] == [(1.0, 1, 2), (4.0, 2, 5)]
