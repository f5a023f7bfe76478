"""DiffusionDet's training and sampling (Chen et al., ICCV 2023, Algorithms 1 and 2) for a
:class:`~cvcourse.models.box_denoiser.BoxDenoiser`.

Training (Algorithm 1): each image's G ground-truth boxes, padded to N with random boxes, become the signal x_0
(normalised cxcywh in [-2, 2], :mod:`cvcourse.detection.box_diffusion`); a timestep t is drawn per image and x_t =
sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (eq. 4 of Ho et al. 2020), clamped to [-2, 2] and read back as
boxes; the model predicts the clean boxes and their classes, and the set loss of every stage is the loss. Unlike
an image model, the box model predicts x_0, not the noise.

Sampling (Algorithm 2): N boxes of pure noise at t = T - 1 (trailing spacing), then for each step: predict the clean
boxes x_0, take the noise eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t) it implies, a DDIM step to the
next timestep (Song et al. 2021, eq. 12, eta 0), and box renewal (boxes scoring below a threshold become fresh noise).
Every step's predictions are pooled (the reference implementation's ensemble) and non-maximum suppression keeps the
best. ``mode`` runs the ablations the chapter measures: ``"fresh"`` replaces the DDIM step by new random boxes at
t = T - 1 (pure ensembling), ``"fixed_t"`` keeps the DDIM steps but always tells the head t = T - 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader
from torchvision import ops

from cvcourse.data.transforms import collate_detection
from cvcourse.detection.box_diffusion import (SIGNAL_SCALE, boxes_to_signal, padded_with_random_boxes, renew_boxes,
                                              signal_to_boxes)
from cvcourse.detection.set_matching import SetLossWeights, set_loss
from cvcourse.detection.training import SceneMemory, Target
from cvcourse.diffusion.forward import predict_eps, q_sample
from cvcourse.diffusion.samplers import ddim_step, ddim_timesteps
from cvcourse.diffusion.schedules import NoiseSchedule
from cvcourse.inference import evaluating
from cvcourse.models.box_denoiser import BoxDenoiser
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer

MODES = ("ddim", "fresh", "fixed_t")


def noisy_boxes(targets: Sequence[Target], image_size: tuple[int, int], count: int, schedule: NoiseSchedule,
                *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1's corruption: boxes (B, ``count``, 4) in pixels, each image's ground truth padded to ``count``
    and noised to its own random timestep, and those timesteps t (B,)."""
    device = targets[0]["boxes"].device if targets else torch.device("cpu")
    x0 = torch.stack([padded_with_random_boxes(target["boxes"].cpu(), image_size, count, generator=generator)
                      for target in targets])
    t = torch.randint(0, schedule.T, (len(targets),), generator=generator)
    x_t = q_sample(schedule.to("cpu"), x0, t, noise=torch.randn(x0.shape, generator=generator)).clamp(
        -SIGNAL_SCALE, SIGNAL_SCALE)
    return torch.stack([signal_to_boxes(x, image_size) for x in x_t]).to(device), t.to(device)


def box_denoising_loss(model: BoxDenoiser, schedule: NoiseSchedule, images: torch.Tensor, targets: Sequence[Target],
                       *, count: int, weights: SetLossWeights = SetLossWeights()) -> dict[str, torch.Tensor]:
    """The set loss of every stage's predictions for noisy boxes (or the learned proposals at t = 0), averaged over
    the images and summed over the stages (each stage is supervised, as in Sparse R-CNN)."""
    image_size = tuple(images.shape[-2:])
    features = model.features(images)
    if model.learned is not None:
        boxes, t = model.proposal_boxes(images), torch.zeros(len(images), dtype=torch.long, device=images.device)
    else:
        boxes, t = noisy_boxes(targets, image_size, count, schedule)
    totals: dict[str, torch.Tensor] = {}
    for stage in model.decode(features, boxes, t):
        for logits, predicted, target in zip(stage["logits"], stage["boxes"], targets):
            for name, value in set_loss(logits.float(), predicted.float(), target["labels"], target["boxes"],
                                        image_size, weights).items():
                totals[name] = totals.get(name, 0) + value / len(images)
    return totals


def train_box_denoiser(model: BoxDenoiser, scenes: Sequence, schedule: NoiseSchedule, *, count: int, steps: int,
                       batch_size: int, lr: float, device: str | torch.device | None = None, seed: int = 0,
                       checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 0,
                       resume: bool = False, progress: bool = True) -> Trainer:
    """AdamW with a one-cycle schedule and gradient clipping on ``scenes`` (left-right flips), as the dense detector
    trains; ``resume=True`` continues from the latest checkpoint in ``checkpoint_dir``."""
    seed_everything(seed)
    loader = DataLoader(SceneMemory(scenes), batch_size=batch_size, shuffle=True, drop_last=True,
                        collate_fn=collate_detection, generator=torch.Generator().manual_seed(seed))
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]  # not a frozen backbone
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=1e-4)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)

    def step(batch: tuple[torch.Tensor, list[Target]], ctx: Trainer) -> dict[str, torch.Tensor]:
        images, targets = batch
        return box_denoising_loss(ctx.model, schedule, images, targets, count=count)

    trainer = Trainer(model, optimizer, step, device=device, schedulers=one_cycle, grad_clip=1.0,
                      checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, progress=progress)
    trainer.fit(loader, steps=steps, resume=resume)
    return trainer


def _step_detections(logits: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's N predictions as detections: the N best (box, class) pairs of the N x K scores, as the reference
    implementation reads them (a box may be kept for two classes)."""
    scores, index = logits.sigmoid().flatten().topk(len(boxes))
    return boxes[index // logits.shape[1]], scores, index % logits.shape[1] + 1


@torch.no_grad()
def sample_boxes(model: BoxDenoiser, schedule: NoiseSchedule, images: torch.Tensor, *, count: int, steps: int,
                 mode: str = "ddim", renewal_threshold: float | None = 0.5, nms_iou: float = 0.5,
                 max_detections: int = 100, generator: torch.Generator | None = None,
                 record: list | None = None) -> list[Target]:
    """Algorithm 2 for a batch of images (B, 3, H, W): detections per image (boxes, scores, labels 1..K).

    ``count`` boxes and ``steps`` DDIM steps, both free at test time; ``renewal_threshold=None`` turns renewal off;
    ``mode`` is one of ``MODES`` (the module's description). ``record``, a list, receives each step's boxes (B, N, 4)
    and best scores (B, N) before the step, for pictures of the boxes moving. A model with learned proposals runs
    its one pass from them, whatever ``count`` and ``steps`` say.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if count < 1 or steps < 1:
        raise ValueError(f"count and steps must be >= 1, got {count} and {steps}.")
    image_size = tuple(images.shape[-2:])
    schedule = schedule.to(images.device)
    with evaluating(model):
        features = model.features(images)
        found: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in images]
        if model.learned is not None:
            start, timesteps = model.proposal_boxes(images), [0]
        else:
            start, timesteps = None, ddim_timesteps(schedule.T, steps)
        x = torch.randn(len(images), count, 4, generator=generator).to(images.device)
        for t, t_prev in zip(timesteps, timesteps[1:] + [-1]):
            boxes = start if start is not None else torch.stack([signal_to_boxes(x_i, image_size) for x_i in x])
            told = t if mode == "ddim" else schedule.T - 1
            prediction = model.decode(features, boxes, torch.full((len(images),), told, device=images.device))[-1]
            scores = prediction["logits"].float().sigmoid().amax(dim=-1)
            if record is not None:
                record.append({"boxes": boxes.cpu(), "scores": scores.cpu()})
            for i, (logits, predicted) in enumerate(zip(prediction["logits"], prediction["boxes"])):
                found[i].append(_step_detections(logits.float(), predicted.float()))
            if t_prev == -1:
                break
            if mode == "fresh":
                x = torch.randn(x.shape, generator=generator).to(x)
                continue
            x0 = torch.stack([boxes_to_signal(b, image_size) for b in prediction["boxes"].float()])
            x = ddim_step(schedule, x, t, t_prev, predict_eps(schedule, x, t, x0), clip_x0=False)
            if renewal_threshold is not None:
                x = torch.stack([renew_boxes(x_i, s_i, renewal_threshold, generator=generator)[0]
                                 for x_i, s_i in zip(x, scores)])
    return [_merged(per_step, nms_iou, max_detections) for per_step in found]


def _merged(per_step: list[tuple[torch.Tensor, ...]], nms_iou: float, max_detections: int) -> Target:
    boxes, scores, labels = (torch.cat(parts) for parts in zip(*per_step))
    keep = ops.batched_nms(boxes, scores, labels, nms_iou)[:max_detections]
    return {"boxes": boxes[keep].cpu(), "scores": scores[keep].cpu(), "labels": labels[keep].cpu()}
