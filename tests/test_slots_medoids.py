"""Representative slots: k-medoids on the slots' maps finds one slot per group of similar maps."""

from __future__ import annotations

import numpy as np

from glmix_viz.slots.medoids import representative_slots


def test_representative_slots_finds_one_medoid_per_cluster() -> None:
    rng = np.random.default_rng(0)
    centres = np.zeros((3, 6, 6))
    centres[0, :3] = 1.0
    centres[1, 3:] = 1.0
    centres[2, :, :3] = 1.0
    membership = rng.permutation(np.repeat(np.arange(3), [10, 12, 8]))
    maps = centres[membership] + rng.normal(0.0, 0.05, (len(membership), 6, 6))
    medoids = representative_slots(maps, k=3)
    assert medoids == sorted(medoids) and len(medoids) == 3
    assert sorted(membership[medoids]) == [0, 1, 2]
    assert representative_slots(maps, k=3, init="random", seed=3) == representative_slots(
        maps, k=3, init="random", seed=3
    )


def test_representative_slots_with_fewer_distinct_maps_than_k() -> None:
    maps = np.zeros((5, 2, 2))
    maps[[2, 4]] = 1.0
    assert representative_slots(maps, k=4) == [0, 2]
