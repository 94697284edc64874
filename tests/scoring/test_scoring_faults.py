"""Behaviour tests for the scoring faults the last review's mutations slipped past (issue 26), and the promise of
issue 25 that the explorer and ``evaluate --compare`` give the same interval for the same two runs.

* the explorer's run comparison and ``evaluate --compare`` show the same intervals (both paths called);
* ``evaluate --compare``'s per-class differences are B - A, like its paired ones;
* the atlas's purity interval comes from real resamples of the images (not degenerate, moves with the data);
* the atlas's object purity leaves the data set's background out.
(mBO's max, the paired difference's sign and object purity's background are also in test_scoring_grouping.py and
test_scoring_stats.py.)
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from glmix_viz.atlas.build import _purity_intervals, background_class
from glmix_viz.atlas.concepts import ConceptStats
from glmix_viz.evaluate import compare_scores, format_comparison
from glmix_viz.scoring.grouping import object_purity, purity

APP = str(Path(__file__).resolve().parents[2] / "app" / "main.py")
INTERVAL = re.compile(r"(mean per-image mIoU|split mIoU)\W+B - A over (\d+) paired images: ([+-]\d+\.\d\d) points, "
                      r"95 % bootstrap interval \[\s*([+-]\d+\.\d\d),\s*([+-]\d+\.\d\d)\]")


def _intervals(text: str) -> dict:
    return {match.group(1): match.groups()[1:] for match in INTERVAL.finditer(text)}


def test_the_explorer_and_evaluate_compare_give_the_same_interval(run_tree, monkeypatch, tmp_path, capsys):
    from streamlit.testing.v1 import AppTest

    from glmix_viz.cli import main

    a, b = run_tree["slot_pool"], run_tree["cam"]
    monkeypatch.setenv("GLMIX_RUNS", str(run_tree["runs"]))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = "runs"  # the run browser is its own page (st.navigation); a link opens it
    at.run()
    at.selectbox(key="run").set_value(str(a)).run()
    at.session_state["run_view"] = "Compare with another run"
    at.run()
    at.selectbox(key="run_compare").set_value(str(b)).run()
    assert not at.exception
    explorer = _intervals("\n".join(element.value.replace("**", "") for element in at.markdown))

    copies = {name: shutil.copytree(path, tmp_path / name) for name, path in (("a", a), ("b", b))}
    code = main(["evaluate", "--voc-root", str(run_tree["data"]), "--split", "val", "--pred", str(copies["a"]),
                 "--compare", str(copies["b"]), "--no-progress"])
    assert code == 0
    command_line = _intervals(capsys.readouterr().out)
    assert set(explorer) == set(command_line) == {"mean per-image mIoU", "split mIoU"}
    assert explorer == command_line
    written = json.loads((copies["a"] / "compare.json").read_text())["paired"]
    low, high = written["split_miou_interval"]["low"], written["split_miou_interval"]["high"]
    assert command_line["split mIoU"][2:] == (f"{100 * low:+.2f}", f"{100 * high:+.2f}")
    assert low < high  # six images that differ: a real interval, not a point


def _evaluation(name: str, iou: dict, per_image_miou: list) -> dict:
    rows = [{"id": f"{index}", "miou": value, "confusion": [[0, 0, 10], [1, 1, 10], [1, 0, int(10 * (1 - value))]]}
            for index, value in enumerate(per_image_miou)]
    return {"pred_dir": name, "split": "val", "class_names": list(iou), "iou": iou,
            "miou": float(np.mean(list(iou.values()))), "num_images": len(rows), "per_image": rows}


def test_compare_per_class_differences_are_b_minus_a_like_the_paired_ones():
    a = _evaluation("A", {"background": 0.9, "cat": 0.2}, [0.3, 0.4, 0.5, 0.2])
    b = _evaluation("B", {"background": 0.8, "cat": 0.6}, [0.6, 0.7, 0.9, 0.5])
    comparison = compare_scores(a, b, resamples=200)
    assert comparison["per_class"]["cat"] == {"a": 0.2, "b": 0.6, "difference": pytest.approx(0.4)}
    assert comparison["per_class"]["background"]["difference"] == pytest.approx(-0.1)
    paired = comparison["paired"]
    assert paired["mean_image_miou_difference"] == pytest.approx(0.325)  # B better on every image
    assert paired["mean_image_miou_interval"]["low"] > 0
    assert [change["id"] for change in comparison["gains"]][:1] == ["2"] and comparison["losses"] == []
    assert "cat" in format_comparison(comparison) and "+40.00" in format_comparison(comparison)
    swapped = compare_scores(b, a, resamples=200)
    assert swapped["per_class"]["cat"]["difference"] == pytest.approx(-0.4)
    assert swapped["paired"]["mean_image_miou_interval"]["high"] < 0


def _stats(per_image_labels, concepts: int = 2, classes: int = 3) -> ConceptStats:
    """Regions of images: per image, (concept, class) pairs."""
    image, concept, label = [], [], []
    for index, regions in enumerate(per_image_labels):
        for k, c in regions:
            image.append(index)
            concept.append(k)
            label.append(c)
    table = np.zeros((concepts, classes), np.int64)
    np.add.at(table, (np.array(concept), np.array(label)), 1)
    return ConceptStats(sizes=table.sum(axis=1), table=table, typical=[[] for _ in range(concepts)],
                        labelled={"image": np.array(image), "concept": np.array(concept), "label": np.array(label)})


def test_the_atlas_purity_interval_comes_from_real_resamples_of_the_images():
    rng = np.random.default_rng(0)
    # 40 images; on each, concept 0 holds class 1 and concept 1 class 2, except on mixed images where both concepts
    # hold class 1: purity varies from image to image, so resampling the images moves it.
    images = [[(0, 1), (1, 2 if rng.random() < 0.6 else 1), (0, 0)] for _ in range(40)]
    stats = _stats(images)
    found = _purity_intervals(stats, 40, background=0, resamples=500, seed=0)
    point = purity(stats.table)
    low, high = found["purity"].low, found["purity"].high
    assert low < point < high and high - low > 0.02
    draws = found["purity"].distribution
    assert draws.shape == (500,) and draws.std() > 0.005 and abs(draws.mean() - point) < 0.02
    # other data, other interval; same data and seed, the same interval
    other = _stats([[(0, 1), (1, 1), (0, 0)]] * 20 + images[:20])
    assert _purity_intervals(other, 40, 0, 500, 0)["purity"].pair() != found["purity"].pair()
    assert _purity_intervals(stats, 40, 0, 500, 0)["purity"].pair() == found["purity"].pair()
    # images that are all alike: every resample has the same purity
    alike = _purity_intervals(_stats([[(0, 1), (1, 2)]] * 10), 10, 0, 200, 0)["purity"]
    assert alike.pair() == pytest.approx((1.0, 1.0))


def test_the_atlas_object_purity_leaves_the_background_out_wherever_it_stands():
    # class 0 "cat", 1 "background", 2 "dog": concept 0 = background + cats, concept 1 = dogs
    stats = _stats([[(0, 1), (0, 1), (0, 1), (0, 0), (1, 2)], [(0, 1), (0, 0), (1, 2), (1, 0)]])
    background = background_class({"class_names": ["cat", "background", "dog"]})
    assert background == 1
    found = _purity_intervals(stats, 2, background, resamples=100, seed=0)
    expected = object_purity(stats.table, 1)
    assert expected == pytest.approx((2 + 2) / 5) and expected != pytest.approx(purity(stats.table))
    assert found["object_purity"].low <= expected <= found["object_purity"].high
    assert background_class({"class_names": ["cat", "dog"]}) is None
    assert background_class({"class_names": ["background", "cat"], "background": None}) is None
