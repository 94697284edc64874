"""The launcher's environment (torchrun, SLURM): ranks, the device, the process, and shards of a split."""

from __future__ import annotations

import random
import string

import pytest
import torch

from glmix_viz.runtime.distributed import (
    WorldInfo,
    launcher_device,
    parse_shard,
    resolve_shard,
    shard_from_environment,
    shard_ids,
    start_process,
    stop_process,
    world_info_from_env,
)


@pytest.mark.parametrize("environ, expected", [
    ({}, WorldInfo(0, 1, 0, None)),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, WorldInfo(3, 4, 1, "torchrun")),
    ({"RANK": "0", "WORLD_SIZE": "1"}, WorldInfo(0, 1, 0, "torchrun")),  # no LOCAL_RANK: 0
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, WorldInfo(5, 8, 1, "slurm")),
    ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "5", "SLURM_NTASKS": "8"}, WorldInfo(1, 2, 0, "torchrun")),
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, WorldInfo(0, 1, 0, None)),  # an array: one process
])
def test_world_info_reads_torchrun_then_slurm(environ, expected):
    assert world_info_from_env(environ) == expected


@pytest.mark.parametrize("environ, message", [
    ({"RANK": "4", "WORLD_SIZE": "4"}, "rank 4 is not in 0..3"),
    ({"SLURM_PROCID": "x", "SLURM_NTASKS": "2"}, "SLURM_PROCID='x' is not an integer"),
])
def test_world_info_refuses_inconsistent_variables_in_one_line(environ, message):
    with pytest.raises(ValueError, match=message):
        world_info_from_env(environ)


def test_a_single_process_runs_on_the_asked_device_without_a_process_group():
    process = start_process("cpu", environ={})
    assert (process.rank, process.world, process.local_rank, process.device) == (0, 1, 0, torch.device("cpu"))
    assert process.is_main and not torch.distributed.is_initialized()
    stop_process(process)


def test_several_slurm_tasks_without_a_rendezvous_address_are_refused():
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        start_process("cpu", environ={"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})


@pytest.mark.parametrize("environ, expected", [
    ({"RANK": "0", "WORLD_SIZE": "4"}, "1/4"),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, "4/4"),
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0"}, "1/3"),
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, "3/3"),  # no MIN: an array from 0
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, "1/4"),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, "4/4"),
    ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10",
      "SLURM_ARRAY_TASK_STEP": "2"}, "3/4"),  # --array=10-16:2
    ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "9"}, "2/2"),
])
def test_shard_from_the_launchers_environment(environ, expected):
    assert shard_from_environment(environ) == expected
    assert resolve_shard("auto", environ) == expected and resolve_shard(" AUTO ", environ) == expected


@pytest.mark.parametrize("environ, message", [
    ({}, "neither torchrun's RANK/WORLD_SIZE nor a SLURM array's"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is not in 0..WORLD_SIZE-1"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}, "not task 1..3"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_STEP": "2"}, "evenly spaced"),
])
def test_missing_or_inconsistent_variables_fail_with_one_line(environ, message):
    with pytest.raises(ValueError) as error:
        shard_from_environment(environ)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_explicit_shards_pass_through():
    assert resolve_shard(None, {}) is None and resolve_shard("2/3", {}) == "2/3" and resolve_shard((1, 2), {}) == (1, 2)
    with pytest.raises(ValueError, match="1-based"):
        resolve_shard("0/3", {})


def test_srun_tasks_shard_when_no_array_is_set():
    assert shard_from_environment({"SLURM_PROCID": "2", "SLURM_NTASKS": "3"}) == "3/3"
    with pytest.raises(ValueError, match="neither torchrun"):  # a single task is no shard
        shard_from_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"})


def test_torchrun_processes_get_their_local_gpu_only_when_no_device_is_given(monkeypatch):
    environ = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert launcher_device("cpu", "auto", environ) == "cpu"
    assert launcher_device(None, "1/4", environ) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launcher_device(None, "auto", environ) == "cuda:1"
    assert launcher_device(None, "auto", {}) is None
    assert launcher_device("cuda", "auto", environ) == "cuda:1"  # a bare "cuda": this process's GPU
    assert launcher_device("cuda:0", "auto", environ) == "cuda:0" and launcher_device("cuda", "auto", {}) == "cuda"


def test_slurm_tasks_get_their_local_gpu_too(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert launcher_device(None, "auto", {"SLURM_PROCID": "6", "SLURM_NTASKS": "8", "SLURM_LOCALID": "2"}) == "cuda:2"


# -- shards of a split ------------------------------------------------------------------------------------------

def test_shards_are_disjoint_complete_and_order_independent():
    generator = random.Random(3)
    ids = ["".join(generator.choices(string.ascii_lowercase + string.digits + "_", k=11)) for _ in range(300)]
    ids = list(dict.fromkeys(ids))
    for count in range(1, 6):
        shards = [shard_ids(ids, f"{index}/{count}") for index in range(1, count + 1)]
        assert sum(len(shard) for shard in shards) == len(ids)
        assert set().union(*shards) == set(ids)
        for shard in shards:
            assert shard == [image_id for image_id in ids if image_id in set(shard)]  # input order kept
            if count > 1:
                assert 0 < len(shard) < len(ids)
        shuffled = ids[::-1]
        for index in range(1, count + 1):
            assert set(shard_ids(shuffled, (index, count))) == set(shards[index - 1])
    assert shard_ids(ids, None) == ids


@pytest.mark.parametrize("bad", ["0/3", "4/3", "a/b", "3", "1/0", "1/2/3", (1, 0), "x"])
def test_bad_shard_specs_raise(bad):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(bad)
