"""One resume state and one set of file names for both training loops; older runs' names still read."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from glmix_viz.errors import CheckpointError
from glmix_viz.runtime.resume import LOG_FILE, STATE_FILE, Progress, load_state, read_state, save_progress, state_path


def _optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_save_then_read_gives_the_same_progress_and_optimiser(tmp_path):
    model, optimizer = _optimizer()
    aux = nn.Linear(2, 2)
    history = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25, "val_miou": 0.4}]
    save_progress(tmp_path, optimizer, Progress(2, 14, 0.4, history), {"aux": aux})
    assert state_path(tmp_path) == tmp_path / STATE_FILE
    assert [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()] == history
    state, progress = read_state(tmp_path)
    assert (progress.epoch, progress.step, progress.history) == (2, 14, history)
    assert progress.best == pytest.approx(0.4)
    _, fresh = _optimizer(seed=1)
    other_aux = nn.Linear(2, 2)
    load_state(state, tmp_path / STATE_FILE, fresh, {"aux": other_aux})
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(other_aux.weight, aux.weight)
    with pytest.raises(CheckpointError, match="cannot resume this run"):
        other = nn.Linear(5, 5)  # two groups where the state has one
        load_state(state, tmp_path / STATE_FILE, torch.optim.AdamW([{"params": [other.weight]},
                                                                    {"params": [other.bias]}]))


def test_no_state_is_none_and_a_broken_one_is_one_line(tmp_path):
    assert read_state(tmp_path) is None
    (tmp_path / STATE_FILE).write_bytes(b"not a state")
    with pytest.raises(CheckpointError) as error:
        read_state(tmp_path)
    assert "\n" not in str(error.value) and STATE_FILE in str(error.value)


def test_older_segmenter_runs_resume_from_their_own_names(tmp_path):
    _, optimizer = _optimizer()
    torch.save({"optimizer": optimizer.state_dict(), "epoch": 2, "step": 8}, tmp_path / "last.state.pt")
    rows = [{"epoch": 1, "val_miou": 0.2}, {"epoch": 2, "val_miou": 0.3}, {"epoch": 3, "val_miou": 0.9}]
    (tmp_path / "history.json").write_text(json.dumps(rows))
    state, progress = read_state(tmp_path)
    assert state_path(tmp_path) == tmp_path / "last.state.pt"
    assert (progress.epoch, progress.step, progress.history, progress.best) == (2, 8, rows[:2], -1.0)


def test_older_classifier_states_keep_their_best_score(tmp_path):
    _, optimizer = _optimizer()
    torch.save({"optimizer": optimizer.state_dict(), "epoch": torch.tensor(3), "step": torch.tensor(30),
                "best_map": torch.tensor(0.75), "history_json": json.dumps([{"epoch": 3}])}, tmp_path / STATE_FILE)
    _, progress = read_state(tmp_path)
    assert (progress.epoch, progress.step, progress.best, progress.history) == (3, 30, 0.75, [{"epoch": 3}])
