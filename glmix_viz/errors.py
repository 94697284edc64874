"""Exceptions raised by glmix-viz.

Every error a user can cause (a bad image, a wrong checkpoint, a missing folder) is one of these, with a one-line
message that names the file and the problem, so command-line tools and the app can report it and carry on.
"""

from __future__ import annotations


class GlmixVizError(Exception):
    """Base class of every error glmix-viz raises on bad input."""


class ImageLoadError(GlmixVizError):
    """An image file is missing, corrupt, of an unsupported type, or too small."""


class CheckpointError(GlmixVizError):
    """A checkpoint file cannot be read or fits no GLNet variant."""


class DataError(GlmixVizError):
    """A data set folder, split list or annotation is missing or malformed."""
