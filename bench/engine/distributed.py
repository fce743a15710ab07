"""Processes under torchrun: where this one stands, and how work is split between them.

`torchrun --nproc_per_node N -m bench run|train|sweep ...` starts N copies of the command; each calls
`start_processes`, which joins the process group (gloo on CPU, NCCL on CUDA, one GPU per local rank).
Outside torchrun everything here is a no-op for rank 0 of 1, so the single-process path is the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass
class Processes:
    """Where this process stands under torchrun (rank 0 of 1 without it)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, items: list[T]) -> list[T]:
        """This rank's share of `items`: every world-th item from position rank. The shares are disjoint,
        together hold every item once, and are not padded (unlike torch's DistributedSampler, which repeats
        items to even them out, and would so count some images twice in the metrics)."""
        return items[self.rank::self.world]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def tag(self) -> str:
        """Names this rank's part files: ranks never write to the same file."""
        return f"r{self.rank}"


def current() -> Processes:
    """The process group this process has joined (rank 0 of 1 when none)."""
    if dist.is_available() and dist.is_initialized():
        from bench import settings

        return Processes(dist.get_rank(), dist.get_world_size(), settings.torchrun_layout()["local_rank"])
    return Processes()


def start_processes(device_spec: str) -> tuple[Processes, torch.device]:
    """Join torchrun's process group when there is one (WORLD_SIZE > 1); the device this rank uses."""
    from bench import settings
    from bench.engine.inference import pick_device

    layout = settings.torchrun_layout()
    world = layout["world"]
    if world <= 1:
        return Processes(), pick_device(device_spec)
    rank, local_rank = layout["rank"], layout["local_rank"]
    device = pick_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(rank, world, local_rank, started), device


def stop_processes() -> None:
    """Leave torchrun's process group, after a last barrier so that no rank leaves while another still
    needs it (a no-op outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
