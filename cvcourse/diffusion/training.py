"""Training a diffusion model with the course's loop: DDPM's Algorithm 1, a warm-up and cosine learning rate, the
weights' EMA, snapshots of samples during training, and a timer for one training step.

The model kept is the exponential moving average of the weights (Ho et al. 2020, Appendix B: EMA decay 0.9999 over
800k steps). Over a few thousand steps whose learning rate decays to zero, a short average is best: a long one
still remembers the early weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvcourse.data import shuffled_batches
from cvcourse.device import pick_device
from cvcourse.diffusion.forward import diffusion_loss, diffusion_training_step, to_image_range
from cvcourse.diffusion.samplers import ddim_sample
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.history import Every
from cvcourse.models.diffusion_unet import DiffusionUNet
from cvcourse.timing import median_seconds
from cvcourse.train import Trainer

SNAPSHOT_SEED = 99  # the fixed noise every snapshot gallery starts from, so they show one set of samples evolving
SNAPSHOT_SAMPLER_STEPS = 20  # DDIM steps per snapshot: cheap, and close enough to track progress
GALLERY_SIZE = 16


class Snapshots:
    """Every ``every`` steps: DDIM samples of the EMA model, ``fcd(images)`` logged as ``fcd``, a gallery kept.

    ``decode`` maps the sampler's output to images in [0, 1]: ``to_image_range`` for pixels (sampled with the
    predicted x_0 clipped to [-1, 1]), the decoder for latents (not clipped, so sampled on the leading grid: see
    ``ddim_timesteps``). Each snapshot draws from the same seeded noise, so the galleries show one set of samples
    taking shape.
    """

    def __init__(self, every: int, schedule: NoiseSchedule, shape: tuple[int, ...], *,
                 fcd: Callable[[torch.Tensor], float], decode: Callable[[torch.Tensor], torch.Tensor] = to_image_range,
                 clip_x0: bool = True, labels: torch.Tensor | None = None) -> None:
        self.every, self.schedule, self.shape, self.labels = every, schedule, shape, labels
        self.fcd, self.decode, self.clip_x0 = fcd, decode, clip_x0
        self.steps: list[int] = []
        self.galleries: list[torch.Tensor] = []

    def callback(self) -> Every:
        return Every(self.every, self)

    @torch.no_grad()
    def __call__(self, trainer: Trainer) -> None:
        model = trainer.ema.module
        model.eval()
        x = ddim_sample(model, self.schedule.to(trainer.device), self.shape, steps=SNAPSHOT_SAMPLER_STEPS,
                        labels=None if self.labels is None else self.labels.to(trainer.device),
                        generator=torch.Generator().manual_seed(SNAPSHOT_SEED), clip_x0=self.clip_x0,
                        spacing="trailing" if self.clip_x0 else "leading")
        images = self.decode(x).cpu()
        trainer.history.log(trainer.step, fcd=self.fcd(images))
        self.steps.append(trainer.step)
        self.galleries.append(images[:GALLERY_SIZE].clone())

    def state(self) -> dict[str, Any]:
        return {"snapshot_steps": self.steps,
                "galleries": torch.stack(self.galleries) if self.galleries else torch.empty(0)}


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int,
                  warmup_fraction: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate times ``step / warmup`` for the warm-up steps, then ``(1 + cos(pi * progress)) / 2``."""
    warmup = max(1, round(warmup_fraction * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_diffusion(model: DiffusionUNet, schedule: NoiseSchedule, x: torch.Tensor, labels: torch.Tensor, *,
                    steps: int, batch_size: int, lr: float, ema_decay: float, conditional: bool = False,
                    drop_label_prob: float = 0.0, min_snr_gamma: float | None = None, pixels: bool = True,
                    seed: int = 0, device: str | torch.device | None = None, checkpoint_dir: str | Path | None = None,
                    checkpoint_every: int = 0, resume: bool = False, progress: bool = True, callbacks=()) -> Trainer:
    """DDPM training (Algorithm 1) with Adam and an EMA of the weights; returns the Trainer (``trainer.ema``).

    ``x`` holds images in [0, 1] (``pixels=True``) or latents already in the model's range. The learning rate
    warms up over the first 5% of the steps and then follows a cosine down to zero (:func:`warmup_cosine`): with a
    budget of a few thousand steps, the decay is what lets the weights settle. ``resume=True`` continues from the
    latest checkpoint in ``checkpoint_dir``.
    """
    step = diffusion_training_step(schedule.to(pick_device(device)), conditional=conditional,
                                   drop_label_prob=drop_label_prob, min_snr_gamma=min_snr_gamma, pixels=pixels)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    trainer = Trainer(model, optimizer, step, device=device, ema_decay=ema_decay,
                      schedulers=warmup_cosine(optimizer, steps), checkpoint_dir=checkpoint_dir,
                      checkpoint_every=checkpoint_every, progress=progress, callbacks=callbacks)
    trainer.fit(shuffled_batches(x, labels, batch_size=batch_size, seed=seed), steps=steps, resume=resume)
    return trainer


def keep_ema(model: nn.Module, trainer: Trainer) -> None:
    """Copy the EMA weights into ``model``: what is cached and sampled from."""
    model.load_state_dict(trainer.ema.module.state_dict())


def seconds_per_step(model: DiffusionUNet, schedule: NoiseSchedule, x0: torch.Tensor, *,
                     encode: Callable[[torch.Tensor], torch.Tensor] | None = None, repeats: int = 20,
                     warmup: int = 3) -> float:
    """The median seconds of one training step (loss, backward, Adam) on the batch ``x0``, timed on a copy.

    ``encode`` (e.g. a frozen encoder) runs inside the timed step first, so latent diffusion pays for encoding
    its batch, as it does when the latents are not precomputed. The model itself is left untouched.
    """
    model = deepcopy(model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    schedule = schedule.to(x0.device)

    def step() -> None:
        x = encode(x0) if encode is not None else x0
        loss = diffusion_loss(model, schedule, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return median_seconds(step, x0.device, repeats=repeats, warmup=warmup)
