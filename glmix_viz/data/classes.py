"""Matching a classifier's classes to a data set's, by name.

A model trained on one numbering can label a data set with another: model class ``c`` is the data-set class of the
same name (compared without case), wherever its id stands. Data-set classes the model does not know are listed
(``unknown``), so a caller reports them once; their images are scored for the classes the model does know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from glmix_viz.data.base import Split, object_ids, object_names
from glmix_viz.errors import DataError

__all__ = ["ClassMatch", "match_classes", "match_label_ids"]


@dataclass(frozen=True)
class ClassMatch:
    """How a model's ``K`` classes map onto a split's class ids.

    Attributes:
        model_names: the model's class names (``K``).
        data_ids: ``(K,)`` the data-set class id of every model class, ``-1`` where the data set lacks it.
        positions: ``(K,)`` the position of that class in the split's image-level labels (``-1``: none).
        label_ids: ``(K + 1,)`` the mask value written for every score channel: channel 0 (background) is the
            split's background id, or its ignore value when it has no background; channel ``c + 1`` is ``data_ids[c]``
            (the ignore value where the data set lacks the class).
        unknown: the split's object classes the model does not know (never labelled).
        unused: the model's classes the split does not have (never present).
    """

    model_names: List[str]
    data_ids: np.ndarray
    positions: np.ndarray
    label_ids: np.ndarray
    unknown: List[str]
    unused: List[str]

    def model_labels(self, data_labels: np.ndarray) -> np.ndarray:
        """A split's image-level labels (over its object classes) as a ``(K,)`` vector over the model's classes."""
        data_labels = np.asarray(data_labels, dtype=np.float32).reshape(-1)
        out = np.zeros(len(self.model_names), dtype=np.float32)
        known = self.positions >= 0
        out[known] = data_labels[self.positions[known]]
        return out

    def warning(self) -> Optional[str]:
        """One line naming the data-set classes the model does not know, or ``None``."""
        if not self.unknown:
            return None
        return (f"the model does not know the data set's classes {', '.join(self.unknown)}: they are never "
                f"labelled (the model knows {', '.join(self.model_names)})")


def match_classes(model_names: Optional[Sequence[str]], split: Split, *, num_model_classes: Optional[int] = None
                  ) -> ClassMatch:
    """Match a model's classes to ``split``'s by name.

    Args:
        model_names: the model's class names, or ``None`` when its checkpoint has none: then its classes are taken
            in the split's object-class order, which needs the same count.
        split: the data set.
        num_model_classes: the model's head size (checked against ``model_names``; needed when they are ``None``).

    Raises:
        DataError: a model without names whose head size differs from the split's object classes, or a model
            sharing no class name with the split.
    """
    names = object_names(split)
    ids = object_ids(split)
    if model_names is None:
        if num_model_classes != len(names):
            raise DataError(f"{split.root}: the model has a {num_model_classes}-class head without class names but "
                            f"the data set has {len(names)} object classes; use a model trained or fine-tuned on it")
        model_names = list(names)
    model_names = [str(name) for name in model_names]
    by_name = {name.lower(): (position, class_id) for position, (name, class_id) in enumerate(zip(names, ids))}
    matched = [by_name.get(name.lower(), (-1, -1)) for name in model_names]
    positions = np.array([position for position, _ in matched], dtype=np.int64)
    data_ids = np.array([class_id for _, class_id in matched], dtype=np.int64)
    if names and not (positions >= 0).any():
        raise DataError(f"{split.root}: the model's classes ({', '.join(model_names[:10])}) share no name with "
                        f"the data set's ({', '.join(names[:10])})")
    known = {name.lower() for name in model_names}
    background = split.ignore if split.background is None else split.background
    label_ids = np.array([background] + [class_id if class_id >= 0 else split.ignore for class_id in data_ids],
                         dtype=np.int64)
    return ClassMatch(
        model_names=model_names, data_ids=data_ids, positions=positions, label_ids=label_ids,
        unknown=[name for name in names if name.lower() not in known],
        unused=[name for name, position in zip(model_names, positions) if position < 0],
    )


def match_label_ids(model_names: Optional[Sequence[str]], split: Split) -> Tuple[np.ndarray, List[str]]:
    """For a model that predicts every class (background included, e.g. a segmenter): the split's class id of each
    of its outputs, matched by name (the ignore value where the split lacks it), and the split's classes it does not
    know.

    Raises:
        DataError: unnamed outputs whose count differs from the split's classes, or no name in common.
    """
    names = list(split.class_names)
    if model_names is None:
        return np.arange(len(names), dtype=np.int64), []
    by_name = {name.lower(): index for index, name in enumerate(names)}
    ids = np.array([by_name.get(str(name).lower(), split.ignore) for name in model_names], dtype=np.int64)
    if names and not (ids != split.ignore).any():
        raise DataError(f"{split.root}: the model's classes ({', '.join(map(str, model_names[:10]))}) share no name "
                        f"with the data set's ({', '.join(names[:10])})")
    known = {str(name).lower() for name in model_names}
    return ids, [name for name in names if name.lower() not in known]
