"""glmix-viz: see what a GLMix network groups, and turn the groupings into segmentation labels.

Importing the package registers every GLNet variant with timm.
"""

from glmix_viz.errors import CheckpointError, DataError, GlmixVizError, ImageLoadError
from glmix_viz.models import GLNet
from glmix_viz.models.info import class_names
from glmix_viz.models.loading import default_device, load_model, save_checkpoint
from glmix_viz.open import Opened, demo_checkpoint, open_checkpoint
from glmix_viz.probe import GroupingProbe, GroupingRecord, glmix_block_names

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "GLNet",
    "GlmixVizError",
    "GroupingProbe",
    "GroupingRecord",
    "ImageLoadError",
    "Opened",
    "class_names",
    "default_device",
    "demo_checkpoint",
    "glmix_block_names",
    "load_model",
    "open_checkpoint",
    "save_checkpoint",
]
