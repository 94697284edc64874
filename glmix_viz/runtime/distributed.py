"""The launcher's environment, read in one place: ranks, the device, the process group, and shards of a split.

Two launchers are understood (after timm's ``utils/distributed.py`` ``world_info_from_env``):

* torchrun (``torch.distributed.run``): ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``;
* SLURM: ``srun`` tasks (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``) and job arrays
  (``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_COUNT``, ``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_STEP``).

torchrun wins when both are set. The training loops join a process group across the ranks
(:func:`start_process`); the batch jobs (``pseudo-label``, ``segment``) split their ids instead, one shard per
process (``--shard auto``: :func:`resolve_shard`). An id belongs to shard ``K`` of ``N`` when
``crc32(id) % N == K - 1``: the choice depends on the id alone, so N jobs cover a split exactly once.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn

from glmix_viz.models.loading import default_device

__all__ = [
    "AUTO_SHARD",
    "Process",
    "WorldInfo",
    "launcher_device",
    "parse_shard",
    "resolve_shard",
    "shard_from_environment",
    "shard_ids",
    "start_process",
    "stop_process",
    "world_info_from_env",
    "wrap_ddp",
]

Shard = Union[None, str, Tuple[int, int]]
AUTO_SHARD = "auto"
"""Shard spec that takes the part from the launcher's environment (:func:`shard_from_environment`)."""


@dataclass(frozen=True)
class WorldInfo:
    """Where this process sits among the launcher's processes.

    Attributes:
        rank: 0-based global rank; world: number of processes; local_rank: rank on this node.
        launcher: "torchrun", "slurm", or None when not launched by either (then ``0, 1, 0``).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launcher: Optional[str] = None


def _env_int(environ: Mapping[str, str], name: str, default: Optional[int] = None) -> int:
    if name not in environ and default is not None:
        return default
    try:
        return int(environ[name])
    except ValueError:
        raise ValueError(f"launcher environment: {name}={environ[name]!r} is not an integer") from None


def world_info_from_env(environ: Optional[Mapping[str, str]] = None) -> WorldInfo:
    """Rank, world size and local rank from torchrun's variables, else SLURM's task variables, else ``0, 1, 0``.

    Raises:
        ValueError: a variable that is not an integer, or a rank outside ``0 .. world - 1`` (one line).
    """
    environ = os.environ if environ is None else environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        info = WorldInfo(_env_int(environ, "RANK"), _env_int(environ, "WORLD_SIZE"),
                         _env_int(environ, "LOCAL_RANK", 0), "torchrun")
    elif "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
        info = WorldInfo(_env_int(environ, "SLURM_PROCID"), _env_int(environ, "SLURM_NTASKS"),
                         _env_int(environ, "SLURM_LOCALID", 0), "slurm")
    else:
        return WorldInfo()
    if not 0 <= info.rank < max(info.world, 1):
        raise ValueError(f"launcher environment ({info.launcher}): rank {info.rank} is not in 0..{info.world - 1}")
    return info


# ------------------------------------------------------------------------------------------------------------------
# Devices and the process group (the training loops)
# ------------------------------------------------------------------------------------------------------------------

def launcher_device(device: Optional[str], shard: Shard = None,
                    environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The device of a batch job: under a launcher with ``--shard auto`` and CUDA, ``cuda:LOCAL_RANK`` (one GPU per
    process) when no device or a bare ``cuda`` is given; else ``device`` (None: the job's default)."""
    if device not in (None, "cuda") or shard is None or str(shard).strip().lower() != AUTO_SHARD:
        return device
    environ = os.environ if environ is None else environ
    info = world_info_from_env(environ)
    if info.launcher is None or not torch.cuda.is_available():
        return device
    return f"cuda:{info.local_rank % torch.cuda.device_count()}"


@dataclass
class Process:
    """Where a training process runs: its rank (0 of 1 when not distributed) and its device."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, writes and prints."""
        return self.rank == 0


def start_process(device: Optional[str] = None, threads: int = 0,
                  environ: Optional[Mapping[str, str]] = None) -> Process:
    """Join the launcher's process group when there are several processes, set the CPU threads, pick the device.

    Several processes on CUDA: ``cuda:LOCAL_RANK`` each (NCCL); otherwise ``device`` (default: CUDA when available;
    gloo between CPU processes).

    Raises:
        ValueError: several SLURM tasks without ``MASTER_ADDR`` / ``MASTER_PORT`` (use torchrun, or set them).
    """
    environ = os.environ if environ is None else environ
    info = world_info_from_env(environ)
    if info.world > 1 and not dist.is_initialized():
        if info.launcher == "slurm" and not ("MASTER_ADDR" in environ and "MASTER_PORT" in environ):
            raise ValueError(f"{info.world} SLURM tasks but no MASTER_ADDR / MASTER_PORT: launch with torchrun, or "
                             "export the address and port of rank 0")
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo",
                                rank=info.rank, world_size=info.world)
    if threads > 0:
        torch.set_num_threads(threads)
    if info.world > 1 and torch.cuda.is_available():
        chosen = torch.device("cuda", info.local_rank)
    else:
        chosen = default_device(device)
    if chosen.type == "cuda" and chosen.index is not None:
        torch.cuda.set_device(chosen)
    return Process(info.rank, max(info.world, 1), info.local_rank, chosen)


def stop_process(process: Process) -> None:
    """Leave the process group (nothing when not distributed)."""
    if process.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(module: Optional[nn.Module], process: Process) -> Optional[nn.Module]:
    """``DistributedDataParallel`` around ``module`` when distributed, else the module itself."""
    if module is None or process.world <= 1:
        return module
    device_ids = [process.device.index] if process.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


# ------------------------------------------------------------------------------------------------------------------
# Shards (the batch jobs)
# ------------------------------------------------------------------------------------------------------------------

def parse_shard(shard: Union[str, Tuple[int, int]]) -> Tuple[int, int]:
    """Parse a shard spec ``"K/N"`` (1-based: ``"1/4"`` .. ``"4/4"``) or a tuple ``(K, N)``.

    Returns:
        ``(K, N)`` with ``1 <= K <= N``.

    Raises:
        ValueError: The spec is malformed or out of range.
    """
    if isinstance(shard, str):
        parts = shard.strip().split("/")
        if len(parts) != 2:
            raise ValueError(f"shard must look like 'K/N' (e.g. '2/4'), got {shard!r}")
        try:
            index, count = int(parts[0]), int(parts[1])
        except ValueError:
            raise ValueError(f"shard must look like 'K/N' with integers K and N, got {shard!r}") from None
    else:
        try:
            index, count = (int(value) for value in shard)
        except (TypeError, ValueError):
            raise ValueError(f"shard must be 'K/N' or a pair (K, N), got {shard!r}") from None
    if count < 1:
        raise ValueError(f"shard count N must be at least 1, got {shard!r}")
    if not 1 <= index <= count:
        raise ValueError(f"shard index K is 1-based and must be in 1..{count}, got {shard!r}")
    return index, count


def _array_shard(environ: Mapping[str, str]) -> str:
    task, count = _env_int(environ, "SLURM_ARRAY_TASK_ID"), _env_int(environ, "SLURM_ARRAY_TASK_COUNT")
    first = _env_int(environ, "SLURM_ARRAY_TASK_MIN", 0)
    step = _env_int(environ, "SLURM_ARRAY_TASK_STEP", 1)
    offset, remainder = divmod(task - first, max(step, 1))
    if remainder or not 0 <= offset < count:
        raise ValueError(
            f"--shard auto: SLURM array task {task} is not task 1..{count} of an evenly spaced array starting at "
            f"{first} (step {step}); use --array=A-B[:S], or give --shard K/N"
        )
    return f"{offset + 1}/{count}"


def shard_from_environment(environ: Optional[Mapping[str, str]] = None) -> str:
    """This process's shard ``"K/N"`` from torchrun, a SLURM job array, or several ``srun`` tasks.

    * torchrun: ``RANK`` (0-based) and ``WORLD_SIZE`` -> ``RANK + 1 / WORLD_SIZE``;
    * a SLURM array (``sbatch --array=A-B[:S]``): ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT``, with
      ``SLURM_ARRAY_TASK_MIN`` (arrays that start at 1, or anywhere) and ``SLURM_ARRAY_TASK_STEP`` (default 1) ->
      ``(ID - MIN) / STEP + 1 / COUNT``. A list of ids (``--array=1,4,9``) cannot be numbered this way: refused;
    * several ``srun`` tasks (``SLURM_NTASKS`` > 1): ``SLURM_PROCID + 1 / SLURM_NTASKS``.

    torchrun wins when both are set (a torchrun launched inside each array task would need the two combined: give
    ``--shard K/N`` then).

    Raises:
        ValueError: no launcher's variables are set, or they are inconsistent (one line).
    """
    environ = os.environ if environ is None else environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        rank, world = _env_int(environ, "RANK"), _env_int(environ, "WORLD_SIZE")
        if not 0 <= rank < world:
            raise ValueError(f"--shard auto: RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
        return f"{rank + 1}/{world}"
    if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
        return _array_shard(environ)
    info = world_info_from_env(environ)
    if info.launcher == "slurm" and info.world > 1:
        return f"{info.rank + 1}/{info.world}"
    raise ValueError(
        "--shard auto: neither torchrun's RANK/WORLD_SIZE nor a SLURM array's SLURM_ARRAY_TASK_ID/"
        "SLURM_ARRAY_TASK_COUNT is set; run under torchrun or sbatch --array, or give --shard K/N"
    )


def resolve_shard(shard: Shard, environ: Optional[Mapping[str, str]] = None) -> Shard:
    """``shard`` itself, or for ``"auto"`` the shard of :func:`shard_from_environment`; checked with
    :func:`parse_shard`. For every batch job that shards (``pseudo-label``, ``segment``)."""
    if shard is None:
        return None
    if isinstance(shard, str) and shard.strip().lower() == AUTO_SHARD:
        shard = shard_from_environment(environ)
    parse_shard(shard)
    return shard


def shard_ids(ids: Iterable[str], shard: Shard) -> list:
    """The ids that belong to one shard of a split, in input order (all of them for ``shard=None``).

    An id belongs to shard ``K`` of ``N`` when ``crc32(id) % N == K - 1``: the choice depends on the id alone, not on
    the order or the length of the list, so N jobs with shards ``1/N`` .. ``N/N`` cover the split exactly once.
    """
    ids = list(ids)
    if shard is None:
        return ids
    index, count = parse_shard(shard)
    return [image_id for image_id in ids if zlib.crc32(str(image_id).encode("utf-8")) % count == index - 1]
