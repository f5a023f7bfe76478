"""One training loop for every chapter.

A chapter writes only its *step function*, ``step(batch, ctx)``, which computes the losses of one batch.
Everything around it lives here, tested once: moving batches to the device, mixed precision, gradient
clipping, EMA weights, learning-rate schedules, progress, history, a live loss plot, periodic
checkpoints with exact resume, and a guard against NaN losses.

The simple case returns a loss and lets the loop optimise it::

    def step(batch, ctx):
        images, labels = batch
        with ctx.autocast():
            return F.cross_entropy(ctx.model(images), labels)

A GAN optimises two players itself and returns what it wants logged::

    def step(batch, ctx):
        ...
        ctx.optimize(d_loss, "D")
        ...
        ctx.optimize(g_loss, "G")
        return {"d_loss": d_loss, "g_loss": g_loss}
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from cvcourse.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    checkpoint_paths,
    claim_checkpoint_dir,
    prune_checkpoints,
    read_checkpoint,
    run_signature,
    scheduler_state,
    write_checkpoint,
)
from cvcourse.device import AmpPolicy, amp_policy, pick_device, to_device
from cvcourse.distributed import join
from cvcourse.epochs import EpochCursor, loader_length, total_steps
from cvcourse.history import History, LivePlot, in_notebook
from cvcourse.interrupts import finish_step_first
from cvcourse.seeding import rng_state, set_rng_state

StepFn = Callable[[Any, "Trainer"], "torch.Tensor | Mapping[str, torch.Tensor]"]


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stopped before it could damage the weights or the batch-norm
    statistics."""


def _as_dict(value: Any, kind: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {kind: value}


class Trainer:
    """Trains ``models`` with ``optimizers`` by calling ``step_fn(batch, trainer)`` on every batch.

    ``models``, ``optimizers`` and ``schedulers`` are one object or a dict of named ones (a GAN's
    ``{"G": ..., "D": ...}``). Schedulers are stepped once per training step. ``ema_decay`` keeps an
    exponential moving average of ``models[ema_of]`` in ``trainer.ema`` (a torch AveragedModel).
    Checkpoints go to ``checkpoint_dir`` every ``checkpoint_every`` steps, after the last step and on Ctrl+C.
    ``seconds`` is the wall time spent in :meth:`fit`; checkpoints keep it, so a resumed run reports the
    time of all its steps, not only of those after the interruption. Under ``torchrun`` (or given a torch.distributed
    ``process_group``) it trains one replica per process, and rank 0 alone writes: :mod:`cvcourse.distributed`.
    """

    def __init__(self, models: nn.Module | Mapping[str, nn.Module],
                 optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer], step_fn: StepFn, *,
                 device: str | torch.device | None = None, amp: AmpPolicy | bool | None = None,
                 grad_clip: float | None = None, schedulers: Any = None, ema_decay: float | None = None,
                 ema_of: str | None = None, checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 0,
                 keep_checkpoints: int = 2, callbacks: Iterable[Any] = (), progress: bool = True,
                 live_plot: bool | None = None, plot_every: int = 25, process_group: Any = None) -> None:
        self.device, self.replicas = join(process_group, pick_device(device))  # one process, or one of N replicas
        self.models = _as_dict(models, "model")
        self.optimizers = _as_dict(optimizers, "optimizer")
        self.schedulers = _as_dict(schedulers, "scheduler")
        if not self.models or not self.optimizers:
            raise ValueError("Trainer needs at least one model and one optimizer.")
        for model in self.models.values():
            model.to(self.device)
        self.step_fn = step_fn
        self.amp = amp if isinstance(amp, AmpPolicy) else amp_policy(self.device, enabled=amp)
        self.scaler = self.amp.make_scaler()
        self.grad_clip = grad_clip
        self.ema = self._make_ema(ema_decay, ema_of)
        self.models = self.replicas.wrap(self.models)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.callbacks = list(callbacks)
        if self.replicas.is_main and (live_plot if live_plot is not None else (progress and in_notebook())):
            self.callbacks.append(LivePlot(every=plot_every))
        self.progress = progress and self.replicas.is_main
        self.history = History()
        self.step = 0  # optimisation steps completed
        self.seconds = 0.0  # wall time spent in fit, summed over every run a checkpoint resumed
        self._clock = time.perf_counter()
        self.cursor = EpochCursor()  # the pass over the loader in progress, replayed exactly on resume
        self._step_values: dict[int, float] = {}
        self._pending_logs: dict[str, torch.Tensor] = {}
        self._optimized = False
        self._rng_after_step = rng_state()
        self._saved_step: int | None = None  # the step of the last checkpoint written

    @property
    def epoch(self) -> int:
        """Passes over the loader completed (or started, mid-pass)."""
        return self.cursor.epoch

    # -- what a step function uses ------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The model, when there is only one."""
        if len(self.models) != 1:
            raise AttributeError(f"There are several models ({', '.join(self.models)}): use ctx.models[name].")
        return next(iter(self.models.values()))

    def autocast(self) -> AbstractContextManager:
        """Mixed-precision context for the forward pass, following the trainer's AMP policy."""
        return self.amp.autocast()

    def optimize(self, loss: torch.Tensor, name: str | None = None) -> float:
        """Backward ``loss`` and step optimizer ``name`` (gradient scaling and clipping included).

        Returns the loss as a float. A NaN or infinite loss raises before any weight changes.
        """
        optimizer = self._optimizer(name)
        value = self._finite_value(loss, name or "loss")
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip)
            self._pending_logs[f"grad_norm{'_' + name if name else ''}"] = norm
        self.scaler.step(optimizer)
        self._step_values[id(loss)] = value
        self._optimized = True
        return value

    # -- the loop -----------------------------------------------------------------------------------
    def fit(self, loader: Iterable, *, steps: int | None = None, epochs: int | None = None,
            resume: bool = False) -> History:
        """Train until ``steps`` optimisation steps (or ``epochs`` passes) are done in total.

        With ``resume=True`` the latest checkpoint in ``checkpoint_dir`` is loaded first, so the run
        continues exactly where it stopped; a fresh trainer without ``resume`` removes the checkpoints an earlier run
        of the same configuration left there, and either refuses another configuration's. Ctrl+C lets the current
        step finish, then saves a checkpoint and returns (a second Ctrl+C stops at once). The last step is always
        checkpointed when there is a ``checkpoint_dir``.
        """
        loader = self.replicas.shard(loader)  # this process's share of every batch (all of it on one process)
        total = total_steps(loader, steps, epochs)
        if self.checkpoint_dir is not None and (resume or self.step == 0):  # a trainer continuing keeps its own
            latest = self.replicas.on_main(claim_checkpoint_dir)(self.checkpoint_dir, self.signature(), resume=resume)
            if latest is not None:
                self.load_checkpoint(latest)
        for model in self.models.values():
            model.train()
        self._clock = time.perf_counter()
        self._rng_after_step = rng_state()
        bar = tqdm(total=total, initial=self.step, disable=not self.progress, desc="train", unit="step")
        started, samples = time.perf_counter(), 0
        with finish_step_first() as interrupted:
            try:
                while self.step < total:
                    yielded, batches = 0, self.cursor.batches(loader)
                    for batch in batches:
                        yielded += 1
                        samples += _batch_size(batch) * self.replicas.world_size
                        self._train_step(batch)
                        bar.update(1)
                        if self.step % 10 == 0 or self.step == total:
                            rate = samples / max(time.perf_counter() - started, 1e-9)
                            bar.set_postfix(self._postfix(rate), refresh=False)
                        if self.replicas.any(interrupted()):  # every process stops after the same step
                            raise KeyboardInterrupt
                        if self.step >= total:
                            break
                    # the pass is over when the loader ran out, or when the last step used its last batch
                    if self.step < total or self.cursor.batch == loader_length(loader):
                        self.cursor.end_pass(loader, batches, yielded)
                if self.checkpoint_dir is not None and self._saved_step != self.step:
                    self.save_checkpoint()
            except KeyboardInterrupt:
                self._interrupted(bar)
            finally:
                self._tick()
                bar.close()
                for callback in self.callbacks:
                    if hasattr(callback, "on_fit_end"):
                        callback.on_fit_end(self)
        return self.history

    def _interrupted(self, bar: tqdm) -> None:
        self._tick()
        saved = self.save_checkpoint() if self.checkpoint_dir is not None else None
        where = f"saved to {saved}" if saved else "kept in memory (no checkpoint_dir was given)"
        self.replicas.on_main(bar.write)(f"Interrupted after step {self.step}; the trained state is {where}. "
                                         "Call fit(..., resume=True) to continue.")

    def signature(self) -> dict[str, Any]:
        """This trainer's configuration, as checkpoints record it (:func:`cvcourse.checkpoint.run_signature`)."""
        return run_signature(self.replicas.unwrap(self.models), self.optimizers, self.schedulers, self._ema_decay)

    def _train_step(self, batch: Any) -> None:
        batch = to_device(batch, self.device, non_blocking=self.device.type == "cuda")
        self._optimized, self._step_values, self._pending_logs = False, {}, {}
        buffers = [(buffer, buffer.detach().clone()) for model in self.models.values() for buffer in model.buffers()]
        try:
            values = self._losses(self.step_fn(batch, self))
        except (NonFiniteLossError, KeyboardInterrupt):
            for buffer, before in buffers:  # the forward pass may have updated batch-norm statistics
                buffer.copy_(before)
            raise
        self.scaler.update()
        for scheduler in self.schedulers.values():
            scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.models[self._ema_of])
        self.step += 1
        self.cursor.batch += 1
        self._rng_after_step = rng_state()  # what a checkpoint of this step restores, even after Ctrl+C
        self.history.log(self.step, **values)
        self._tick()
        if self.checkpoint_every and self.checkpoint_dir is not None and self.step % self.checkpoint_every == 0:
            self.save_checkpoint()
        for callback in self.callbacks:
            if hasattr(callback, "on_step_end"):
                callback.on_step_end(self)

    def _losses(self, output: Any) -> dict[str, float]:
        """The step's logged values as floats, after optimising its loss if the step function did not."""
        losses = dict(output) if isinstance(output, Mapping) else {"loss": output}
        if not self._optimized:
            if "loss" not in losses or len(self.optimizers) != 1:
                raise ValueError(
                    "The step function returned without calling ctx.optimize(loss, name). With one "
                    "optimizer, return the loss (or a dict with a 'loss' entry); with several, call "
                    "ctx.optimize once per optimizer."
                )
            self.optimize(losses["loss"])
        values = {name: self._step_values.get(id(value)) if torch.is_tensor(value) else value
                  for name, value in losses.items()}
        values = {name: self._finite_value(losses[name], name) if value is None else value
                  for name, value in values.items()}
        return {**values, **{name: float(norm) for name, norm in self._pending_logs.items()}}

    def _tick(self) -> None:
        """Add the time since the last tick to ``seconds``, so that checkpoints carry it."""
        now = time.perf_counter()
        self.seconds, self._clock = self.seconds + now - self._clock, now

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return self.replicas.with_rank_states({
            "format": CHECKPOINT_FORMAT,
            "step": self.step, **self.cursor.state_dict(),
            "models": {name: model.state_dict() for name, model in self.replicas.unwrap(self.models).items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: scheduler_state(sched) for name, sched in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "history": self.history.state_dict(),
            "seconds": self.seconds,
            "rng": self._rng_after_step,
            "signature": self.signature(),
        })

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Write the whole training state (atomically) and return its path; keep the newest ``keep_checkpoints``."""
        if path is None:
            if self.checkpoint_dir is None:
                raise ValueError("No path given and no checkpoint_dir set: pass one of them.")
            path = self.checkpoint_dir / f"step_{self.step:07d}.pt"
        path = self.replicas.on_main(write_checkpoint)(self.state_dict(), path)  # rank 0 writes, the others wait
        self._saved_step = self.step
        if self.checkpoint_dir is not None and path.parent == self.checkpoint_dir:
            self.replicas.on_main(prune_checkpoints)(self.checkpoint_dir, self.keep_checkpoints)
        return path

    def checkpoints(self) -> list[Path]:
        """This trainer's checkpoint files, oldest first."""
        return checkpoint_paths(self.checkpoint_dir) if self.checkpoint_dir is not None else []

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore everything :meth:`save_checkpoint` wrote; see :func:`read_checkpoint`."""
        state = self.replicas.own_rank_states(read_checkpoint(path))
        try:
            for name, model in self.replicas.unwrap(self.models).items():
                model.load_state_dict(state["models"][name])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            for name, scheduler in self.schedulers.items():
                scheduler.load_state_dict(state["schedulers"][name])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(
                f"Checkpoint {path} does not fit this trainer ({error}). It was written for other models, "
                "optimizers or settings: build the same ones, or use a new checkpoint_dir to start afresh."
            ) from error
        self.scaler.load_state_dict(state["scaler"])
        self.history.load_state_dict(state["history"])
        self.step = state["step"]
        self.cursor.load_state_dict(state)
        self.seconds = state.get("seconds", 0.0)  # checkpoints written before it was kept carry none
        self._rng_after_step = state["rng"]
        set_rng_state(state["rng"])

    # -- helpers -------------------------------------------------------------------------------------
    def _make_ema(self, decay: float | None, of: str | None) -> AveragedModel | None:
        self._ema_decay = decay
        if decay is None:
            return None
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.999; got {decay}.")
        self._ema_of = of or next(iter(self.models))
        if self._ema_of not in self.models:
            raise KeyError(f"ema_of={of!r} is not one of the models: {', '.join(self.models)}.")
        return AveragedModel(self.models[self._ema_of], multi_avg_fn=get_ema_multi_avg_fn(decay),
                             use_buffers=True)

    def _optimizer(self, name: str | None) -> torch.optim.Optimizer:
        if name is None:
            if len(self.optimizers) != 1:
                raise ValueError(f"Several optimizers ({', '.join(self.optimizers)}): call ctx.optimize(loss, name).")
            return next(iter(self.optimizers.values()))
        if name not in self.optimizers:
            raise KeyError(f"No optimizer named {name!r}; the trainer has: {', '.join(self.optimizers)}.")
        return self.optimizers[name]

    def _finite_value(self, loss: Any, name: str) -> float:
        value = self.replicas.mean(float(loss.detach().float().item()) if torch.is_tensor(loss) else float(loss))
        if not math.isfinite(value):
            last = self.latest_checkpoint()
            raise NonFiniteLossError(
                f"{name} became {value} at step {self.step + 1}; training stopped before updating the weights. "
                f"Last good checkpoint: {last if last else 'none'}. Lower the learning rate, set grad_clip, "
                "check the inputs' value range, then resume with fit(..., resume=True)."
            )
        return value

    def _postfix(self, samples_per_second: float) -> dict[str, str]:
        shown = {name: f"{self.history.last(name):.4f}" for name in self.history.names()[:3]}
        shown["img/s"] = f"{samples_per_second:.0f}"
        return shown


def supervised_step(loss_fn: Callable[[torch.Tensor, Any], torch.Tensor]) -> StepFn:
    """The step of supervised learning: ``loss_fn(model(inputs), targets)`` for ``(inputs, targets)`` batches."""

    def step(batch: Any, ctx: Trainer) -> torch.Tensor:
        inputs, targets = batch
        with ctx.autocast():
            return loss_fn(ctx.model(inputs), targets)

    return step


def _batch_size(batch: Any) -> int:
    """Number of samples in a batch: the length of its first tensor."""
    if torch.is_tensor(batch):
        return len(batch)
    if isinstance(batch, Mapping):
        return _batch_size(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    return 1
