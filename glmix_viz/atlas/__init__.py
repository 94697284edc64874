"""The slot atlas: what the slots of a GLMix block stand for across a data set.

Every image's regions (one per slot that holds pixels in the block's hard grouping) are collected with their
features into chunk files on disk (:mod:`~glmix_viz.atlas.collect`, :mod:`~glmix_viz.atlas.job`: batched,
resumable, shardable, bounded memory), clustered into concepts by scikit-learn's ``MiniBatchKMeans`` streamed over
the chunks (:mod:`~glmix_viz.atlas.concepts`) - or, for blocks with learned initial slots, given their slot index as
concept (:mod:`~glmix_viz.atlas.sources`, the one place that knows where concepts come from) - and described: size,
purity against the classes where masks exist, typical regions, a 2-D map and a figure (:mod:`~glmix_viz.atlas.build`,
:mod:`~glmix_viz.atlas.pictures`); the scores and their intervals are :mod:`glmix_viz.scoring`'s.
:mod:`~glmix_viz.atlas.read` opens a finished atlas for the explorer and the notebooks.
"""

from glmix_viz.atlas.build import ATLAS_FORMAT, build_atlas
from glmix_viz.atlas.job import AtlasSettings, collect_regions, run_atlas

__all__ = ["ATLAS_FORMAT", "AtlasSettings", "build_atlas", "collect_regions", "run_atlas"]
