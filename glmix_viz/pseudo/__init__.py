"""From slots to segmentation labels: class score maps, background rule, dense CRF, batch pipeline, mIoU metrics.

Import the submodules directly (``glmix_viz.pseudo.metrics``, ``glmix_viz.pseudo.crf``, ...); this package imports
nothing itself, so that light tools (e.g. evaluation) do not pull in torch or pydensecrf.
"""
