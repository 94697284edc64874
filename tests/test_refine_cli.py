"""``--refine`` on pseudo-label and segment: the choice reaches the run, and bad input is one line before any image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glmix_viz.cli import main
from glmix_viz.data.shapes import ShapesConfig, make_shapes
from glmix_viz.refine import PARParams, refined_labels
from glmix_viz.segment.predict import _labels


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root, ShapesConfig(image_size=64), num_train=1, num_val=2, seed=4, progress=False)
    return root


def _pseudo_label(data: Path, out: Path, *extra: str) -> int:
    return main(["pseudo-label", "--voc-root", str(data), "--split", "val", "--model", "glnet_tiny", "--method", "cam",
                 "--workers", "0", "--no-progress", "--device", "cpu", "--out", str(out), *extra])


def test_refine_par_reaches_the_run_with_its_settings(data, tmp_path):
    out = tmp_path / "out"
    assert _pseudo_label(data, out, "--refine", "par", "--par-iterations", "2", "--par-dilations", "1,3") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["refine"] == "par"
    assert summary["settings"]["crf"]["dilations"] == [1, 3] and summary["settings"]["crf"]["iterations"] == 2
    assert len(list(out.glob("*.png"))) == 2 and set(summary["stage_share"]) == {"load", "network", "refine", "write"}


def test_the_crf_flags_stay_aliases(data, tmp_path):
    assert _pseudo_label(data, tmp_path / "none", "--no-crf") == 0
    assert json.loads((tmp_path / "none" / "summary.json").read_text())["settings"]["refine"] == "none"
    assert _pseudo_label(data, tmp_path / "default", "--crf-iterations", "1") == 0
    assert json.loads((tmp_path / "default" / "summary.json").read_text())["settings"]["refine"] == "crf"


@pytest.mark.parametrize("extra, message", [
    (("--refine", "par", "--par-iterations", "-1"), "PAR iterations must be an integer >= 0, got -1"),
    (("--refine", "par", "--par-dilations", ""), "PAR dilations must not be empty"),
    (("--refine", "par", "--par-scale", "2"), "PAR scale must be in (0, 1], got 2.0"),
    (("--refine", "par", "--no-crf"), "--no-crf contradicts --refine par"),
])
def test_bad_refinement_settings_are_one_line_before_any_image(data, tmp_path, capsys, extra, message):
    assert _pseudo_label(data, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("glmix-viz pseudo-label: error: ") and message in err[-1]
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


def test_an_unknown_refinement_is_refused_by_the_parser(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _pseudo_label(data, tmp_path / "out", "--refine", "bilateral")
    assert exit_.value.code == 2 and "invalid choice: 'bilateral'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_where_none_exists_is_one_line(data, tmp_path, capsys):
    code = main(["pseudo-label", "--voc-root", str(data), "--split", "val", "--model", "glnet_tiny", "--refine", "par",
                 "--device", "cuda", "--no-progress", "--out", str(tmp_path / "out")])
    assert code == 2 and "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_par_settings_and_their_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["pseudo-label", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--refine {crf,par,none}" in text and "(default: crf)" in text
    assert "default: 1,2,4,8,12,24" in text and "--par-iterations" in text and "ToCo" in text
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    assert "(default: none)" in " ".join(capsys.readouterr().out.split())


def test_segment_labels_follow_the_refinement_type():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    probs = rng.random((3, 16, 20)).astype(np.float32)
    assert np.array_equal(_labels(image, probs, PARParams()), refined_labels(image, probs, PARParams()))
    assert np.array_equal(_labels(image, probs, None), probs.argmax(0))
