"""Representative slots of a block: k-medoids on the pairwise L2 distances between the slots' maps.

The authors' figure frames four slots of a block's dispatch maps; they are the medoids of the maps, so that the
framed slots show groupings that differ from each other. Numeric only: the pictures are :mod:`glmix_viz.viz`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["representative_slots"]


def representative_slots(
    maps: np.ndarray, k: int = 4, *, seed: int = 0, max_iter: int = 100, init: str = "build"
) -> list[int]:
    """Pick ``k`` representative slots by k-medoids on the pairwise L2 distances between their maps.

    The distance matrix is ``(S, S)``, between flattened maps. Medoids are initialised either greedily (``"build"``,
    PAM's BUILD step: deterministic and reliable on well separated groups) or, as the authors did, at random among
    distinct maps (``"random"``, reproducible for a ``seed``). Then assignment (each map to its nearest medoid) and
    update (each cluster's medoid becomes the member with the least total distance to the others) alternate until
    nothing changes or ``max_iter`` rounds have passed.

    Args:
        maps: ``(S, h, w)`` maps.
        k: Number of representatives.
        seed: Seed of the random initialisation (used by ``init="random"``).
        max_iter: Maximum number of assignment/update rounds.
        init: ``"build"`` or ``"random"``.

    Returns:
        Sorted slot indices of the medoids. When fewer than ``k`` distinct maps exist, one slot per distinct map (its
        first occurrence) is returned.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (S, h, w), got {maps.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if init not in ("build", "random"):
        raise ValueError(f"init must be 'build' or 'random', got {init!r}")
    flat = maps.reshape(maps.shape[0], -1)
    if flat.shape[0] == 0:
        return []
    _, first_occurrence = np.unique(flat, axis=0, return_index=True)
    distinct = np.sort(first_occurrence)
    if len(distinct) <= k:
        return [int(index) for index in distinct]
    squared = (flat**2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * flat @ flat.T, 0.0))
    if init == "random":
        medoids = np.sort(np.random.default_rng(seed).choice(distinct, size=k, replace=False))
    else:
        medoids = _build_medoids(distances, distinct, k)
    for _ in range(max_iter):
        assignment = np.argmin(distances[:, medoids], axis=1)
        updated = medoids.copy()
        for cluster in range(k):
            members = np.flatnonzero(assignment == cluster)
            if len(members) == 0:
                continue
            costs = distances[np.ix_(members, members)].sum(axis=1)
            updated[cluster] = members[int(np.argmin(costs))]
        if np.array_equal(np.sort(updated), np.sort(medoids)):
            break
        medoids = updated
    return sorted(int(index) for index in medoids)


def _build_medoids(distances: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """PAM BUILD: first the candidate with the least total distance, then greedily the one that lowers cost most."""
    total = distances[:, candidates].sum(axis=0)
    medoids = [int(candidates[int(np.argmin(total))])]
    nearest = distances[:, medoids[0]].copy()
    for _ in range(1, k):
        remaining = np.array([index for index in candidates if index not in medoids])
        gains = np.maximum(nearest[:, None] - distances[:, remaining], 0.0).sum(axis=0)
        pick = int(remaining[int(np.argmax(gains))])
        medoids.append(pick)
        nearest = np.minimum(nearest, distances[:, pick])
    return np.array(medoids, dtype=np.intp)
