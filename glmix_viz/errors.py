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


def one_line(error: BaseException, *, with_type: bool = True, limit: int | None = None) -> str:
    """An exception's message as one line: whitespace collapsed, and its type named unless it is a GlmixVizError
    (whose messages are written for users) or ``with_type`` is False; cut to ``limit`` characters when given."""
    text = " ".join(str(error).split()) or type(error).__name__
    if with_type and not isinstance(error, GlmixVizError):
        text = f"{type(error).__name__}: {text}"
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return text
