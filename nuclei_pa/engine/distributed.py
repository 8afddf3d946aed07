"""Data-parallel training under ``torchrun``: one process per GPU (gloo on CPU, for tests).

``torchrun`` sets WORLD_SIZE, RANK and LOCAL_RANK; without them training runs as one process
and every helper here is a no-op, so the training loop has a single code path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this code created the process group, so it tears it down

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and progress."""
        return self.rank == 0


def init_world(device: torch.device) -> World:
    """Join the process group ``torchrun`` describes in the environment, if any.

    NCCL for CUDA, gloo for CPU. Each CUDA process takes the GPU of its LOCAL_RANK.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def process_device(device: torch.device, world: World) -> torch.device:
    """The device this process trains on: its own GPU under data parallelism."""
    if world.size > 1 and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def broadcast(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object), so all ranks decide alike."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(values: torch.Tensor, world: World) -> torch.Tensor:
    """Average a small tensor (the loss terms) over processes, for logging and NaN checks."""
    if world.size == 1:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / world.size


def digest(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer, bitwise: equal digests, equal models."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_replicas_agree(module: torch.nn.Module, world: World) -> None:
    """Raise if data-parallel replicas ended with different weights (silent divergence)."""
    if world.size == 1:
        return
    digests: list[Any] = [None] * world.size
    dist.all_gather_object(digests, digest(module))
    if len(set(digests)) != 1:
        raise RuntimeError(f"data-parallel replicas diverged: weight digests {digests}")


def finish(world: World) -> None:
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()
