"""glmix_viz.scoring.errors: the one error coding, with the background and ignore values of the data set."""

from __future__ import annotations

import numpy as np
import pytest

from glmix_viz.scoring.errors import ERROR_KINDS, error_map


def _kinds(codes):
    return [ERROR_KINDS[code] for code in np.asarray(codes).reshape(-1)]


def test_error_map_tells_the_kinds_apart():
    gt = np.array([[0, 0, 1, 1, 2, 255, 1]])
    pred = np.array([[0, 2, 0, 1, 1, 0, 255]])
    assert _kinds(error_map(pred, gt)) == ["correct", "false foreground", "missed foreground", "correct",
                                           "wrong class", "ignored", "unsure"]


def test_the_background_is_the_data_sets_wherever_it_stands():
    gt = np.array([[3, 3, 0, 0, 1]])
    pred = np.array([[3, 0, 3, 1, 0]])
    assert _kinds(error_map(pred, gt, background=3)) == ["correct", "false foreground", "missed foreground",
                                                         "wrong class", "wrong class"]
    # no background class: every mistake is a wrong class
    assert _kinds(error_map(pred, gt, background=None)) == ["correct"] + ["wrong class"] * 4


def test_the_ignore_value_is_the_data_sets():
    gt = np.array([[9, 0, 1]])
    pred = np.array([[1, 9, 255]])
    assert _kinds(error_map(pred, gt, ignore=9)) == ["ignored", "unsure", "wrong class"]
    with pytest.raises(ValueError, match="differs"):
        error_map(pred[:, :2], gt)
