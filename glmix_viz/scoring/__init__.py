"""Every score of glmix-viz, in one floor that imports nothing above it (numpy, scipy, scikit-learn only).

* :mod:`~glmix_viz.scoring.segmentation` - confusion matrix, per-class IoU, mIoU, accuracies, per-image scores,
  :class:`~glmix_viz.scoring.segmentation.SegmentationMetric`;
* :mod:`~glmix_viz.scoring.grouping` - ARI, mean best overlap (also after merging slots), DINOSAUR's semantic mIoU,
  purity and object purity of concepts;
* :mod:`~glmix_viz.scoring.classification` - average precision and mAP;
* :mod:`~glmix_viz.scoring.errors` - the error coding of a predicted label map;
* :mod:`~glmix_viz.scoring.stats` - the one bootstrap (:func:`scipy.stats.bootstrap`) and paired differences, with
  one default number of resamples.

Which class is the background and which value is ignored are parameters everywhere (the data set's); no function
assumes class 0. The submodules are imported by name (``from glmix_viz.scoring.stats import paired_difference``).
"""

__all__ = ["classification", "errors", "grouping", "segmentation", "stats"]
