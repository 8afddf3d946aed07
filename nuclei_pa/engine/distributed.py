"""Data-parallel training under ``torchrun``: one process per GPU (gloo on CPU for tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device: torch.device) -> World:
    """Join the process group torchrun set up (WORLD_SIZE/RANK/LOCAL_RANK), if any."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shard(items: list, world: World) -> list:
    """This process's share of a global batch (every process gets the same count or one less)."""
    return items[world.rank :: world.size]


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def finish(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def check_replicas_agree(model: torch.nn.Module, world: World) -> None:
    """Raise if data-parallel replicas ended with different weights (a silent-divergence guard)."""
    if world.size == 1:
        return
    with torch.no_grad():
        total = (
            torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
        )
        gathered = [torch.zeros_like(total) for _ in range(world.size)]
        dist.all_gather(gathered, total)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(
            f"data-parallel replicas diverged: parameter sums {[float(g) for g in gathered]}"
        )
