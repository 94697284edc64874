"""The plumbing shared by the batch jobs and the training loops (after timm's ``utils`` / ``scheduler`` / ``optim``).

* :mod:`glmix_viz.runtime.distributed`: the one reader of the launcher's environment (torchrun, SLURM): ranks, the
  device, the process group, and shards of a split (``--shard auto``);
* :mod:`glmix_viz.runtime.jobs`: a batch job's plan (shard, todo, resume, stale temporaries) and its
  :class:`~glmix_viz.runtime.jobs.RunSummary`;
* :mod:`glmix_viz.runtime.resume`: one resume state and one set of file names for both training loops;
* :mod:`glmix_viz.runtime.optim`: parameter groups, AdamW and the per-step schedules, on timm's factories;
* :mod:`glmix_viz.runtime.config`: the run-time settings both training configurations share.

Nothing here knows of GLNet, pseudo-masks or segmenters; ``train/``, ``pseudo/`` and ``segment/`` build on it.
"""
