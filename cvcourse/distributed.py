"""Training on several processes with PyTorch's own data parallelism: torchrun, DistributedDataParallel and
DistributedSampler (https://pytorch.org/docs/stable/notes/ddp.html, https://pytorch.org/docs/stable/elastic/run.html).

Each process holds a full replica of the model and trains on its own share of every batch; in the backward pass
DistributedDataParallel averages the gradients over the processes (an all-reduce), so every replica takes the same
optimizer step and the replicas stay identical. :class:`cvcourse.train.Trainer` does this by itself when torchrun
started the process (or when it is given a process group): the same training code runs on 1 or N processes::

    torchrun --standalone --nproc_per_node=2 my_training.py

A loader's batch is the *global* batch: on N processes each one trains on ``batch_size / N`` of its images, so a
recipe keeps its batch size and learning rate whatever the number of processes. Rank 0 alone writes checkpoints and
every process reads them: on several machines, give the Trainer a ``checkpoint_dir`` on a file system they share.
On one process, without a process group, every method of :class:`Replicas` returns what it was given: the
single-process path is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")  # what init_method="env://" reads
RANK_STATES = ("rng", "epoch_start", "next_loader_state")  # the parts of a checkpoint that differ between processes


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or another launcher setting torch's ``env://`` variables) started."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


class Replicas:
    """The processes that train one model together: ``rank`` (this one, from 0), ``world_size`` (how many) and
    ``group`` (their ``torch.distributed`` process group; None for a single process)."""

    def __init__(self, group: dist.ProcessGroup | None = None, device: torch.device | None = None) -> None:
        self.group = group
        self.device = device or torch.device("cpu")
        self.rank = dist.get_rank(group) if group is not None else 0
        self.world_size = dist.get_world_size(group) if group is not None else 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that shows progress and writes checkpoints."""
        return self.rank == 0

    def __repr__(self) -> str:
        if self.group is None:
            return "Replicas(a single process)"
        return f"Replicas(rank {self.rank} of {self.world_size}, {dist.get_backend(self.group)} on {self.device})"

    def wrap(self, models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        """Every model with trainable parameters in a DistributedDataParallel, which averages its gradients over the
        processes during the backward pass (and starts every replica from rank 0's weights)."""
        if self.group is None:
            return dict(models)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return {name: DistributedDataParallel(model, device_ids=device_ids, process_group=self.group)
                if any(parameter.requires_grad for parameter in model.parameters()) else model
                for name, model in models.items()}

    @staticmethod
    def unwrap(models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        """The models inside their DistributedDataParallel wrappers: what checkpoints hold, on any number of
        processes."""
        return {name: model.module if isinstance(model, DistributedDataParallel) else model
                for name, model in models.items()}

    def shard(self, loader: Any) -> Any:
        """This process's share of ``loader``: see :func:`shard_loader`."""
        return loader if self.group is None else shard_loader(loader, self.rank, self.world_size)

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (an all-reduce). A NaN or infinity on any process makes it
        non-finite on all of them, so they stop together instead of waiting for each other."""
        if self.group is None:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total, group=self.group)
        return total.item() / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on one (Ctrl+C may reach them between two different steps)."""
        if self.group is None:
            return flag
        found = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(found, op=dist.ReduceOp.MAX, group=self.group)
        return bool(found.item())

    def on_main(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` run by rank 0 alone (writing or deleting files); every process gets its result, or raises
        its error."""
        if self.group is None:
            return function

        def on_rank_zero(*args: Any, **kwargs: Any) -> Any:
            outcome: list[Any] = [None, None]  # [result, error]
            if self.is_main:
                try:
                    outcome[0] = function(*args, **kwargs)
                except Exception as error:  # every process must learn of it, or the others would wait forever
                    outcome[1] = error
            dist.broadcast_object_list(outcome, src=dist.get_global_rank(self.group, 0), group=self.group)
            if outcome[1] is not None:
                raise outcome[1]
            return outcome[0]

        return on_rank_zero

    def with_rank_states(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` (rank 0's) plus ``state["ranks"]``, every process's random states, gathered from all of them:
        resumed, each process draws the random numbers it would have drawn. Every process must call it."""
        if self.group is None:
            return state
        ranks: list[Any] = [None] * self.world_size
        dist.all_gather_object(ranks, {key: state[key] for key in RANK_STATES}, group=self.group)
        return {**state, "ranks": ranks}

    def own_rank_states(self, state: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint's ``state`` with this process's own random states. A checkpoint written by one process, or by
        another number of processes, gives every process rank 0's states."""
        ranks = state.get("ranks")
        if self.group is None or ranks is None or len(ranks) != self.world_size:
            return state
        return {**state, **ranks[self.rank]}


def join(process_group: dist.ProcessGroup | None, device: torch.device) -> tuple[torch.device, Replicas]:
    """The device this process trains on and the replicas it belongs to: ``process_group``, else the default process
    group if one is started, else one started here from torchrun's environment (NCCL on GPUs, gloo on CPUs), else
    none (a single process). With CUDA, process ``LOCAL_RANK`` of a machine trains on its GPU ``LOCAL_RANK``."""
    if process_group is None and not (dist.is_available() and (dist.is_initialized() or launched_by_torchrun())):
        return device, Replicas()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives run on the current device
    if process_group is None and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, Replicas(process_group if process_group is not None else dist.group.WORLD, device)


def finish() -> None:
    """Close the default process group, if one is open: the end of a script that torchrun runs."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_loader(loader: Any, rank: int, world_size: int) -> DataLoader:
    """A DataLoader over the same dataset whose batches are process ``rank``'s share of ``loader``'s.

    A DistributedSampler deals out ``loader``'s order: shuffled (from the loader's generator seed, 0 without one)
    or in order, and each of its passes in the order its epoch sets. The ``world_size`` processes' batches of
    ``batch_size / world_size`` together make one batch of ``batch_size``: the same images, whatever the number of
    processes, as one process given a ``DistributedSampler(dataset, num_replicas=1, seed=...)`` loader trains on. A
    loader already dealt out by a DistributedSampler for ``world_size`` processes is returned as it is.
    """
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise TypeError(f"Training on {world_size} processes needs a torch DataLoader with a batch_size, so that each "
                        f"process can take its share of every batch; got {type(loader).__name__}. Pass a DataLoader, "
                        "or one whose sampler is a DistributedSampler for this number of processes.")
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler) and sampler.num_replicas == world_size:
        return loader
    if isinstance(sampler, DistributedSampler) and sampler.num_replicas == 1:
        shuffle, seed = sampler.shuffle, sampler.seed
    elif isinstance(sampler, RandomSampler) and not sampler.replacement and sampler.num_samples == len(loader.dataset):
        shuffle, seed = True, sampler.generator.initial_seed() if sampler.generator is not None else 0
    elif isinstance(sampler, SequentialSampler):
        shuffle, seed = False, 0
    else:
        raise TypeError(f"Cannot share out a loader whose sampler is a {type(sampler).__name__} over {world_size} "
                        "processes: use shuffle=True or False, or give it a DistributedSampler of your own.")
    if loader.batch_size % world_size:
        raise ValueError(f"A batch of {loader.batch_size} cannot be split evenly over {world_size} processes: make "
                         f"the batch size a multiple of {world_size} (it is the global batch, shared by them all).")
    share = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                               drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size // world_size, sampler=share,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      drop_last=loader.drop_last, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      multiprocessing_context=loader.multiprocessing_context, generator=loader.generator,
                      prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers)
