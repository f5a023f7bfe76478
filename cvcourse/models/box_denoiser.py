"""DiffusionDet's detector at the course's scale: a set of N boxes refined by a head that reads the image under each.

DiffusionDet (Chen et al., ICCV 2023, "DiffusionDet: Diffusion Model for Object Detection", section 3.3) splits the
detector in two: an image encoder run once per image (here chapter 08's backbone and feature pyramid,
:class:`~cvcourse.models.detector.PyramidBackbone`), and a detection decoder that takes N noisy boxes and the
timestep t and predicts, for each box, class scores and the clean box. The decoder is Sparse R-CNN's (Sun et al.
2021) with a time embedding; each of its stages

1. pools the features under every box with RoIAlign (He et al. 2017), from the pyramid level that suits the box's
   size (``torchvision.ops.MultiScaleRoIAlign``), and flattens them to one vector per box, added to the box's
   vector from the previous stage (Sparse R-CNN's proposal features);
2. lets the N boxes of an image attend to each other (multi-head self-attention): a set predictor must see its
   other guesses to leave an object to one box;
3. scales and shifts the vectors by the time embedding (as DiffusionDet's ``block_time_mlp``);
4. predicts K class logits and a refinement (dx, dy, dw, dh) of its input box (R-CNN's box deltas, weights
   2, 2, 1, 1); the refined boxes, detached, are the next stage's input (each stage is trained on its own step).

We keep the paper's parts and shrink them: a linear layer where Sparse R-CNN has a dynamic convolution, two stages
where it has six. With ``learned_proposals=N`` the same head starts from N boxes learned as parameters at t = 0
instead of noisy ones: Sparse R-CNN, the design DiffusionDet grew from. With ``frozen_backbone=True`` the encoder
keeps the weights it was given (and its batch-norm statistics, even in training mode): only the decoder learns, which
makes a training step several times cheaper.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision import ops

from cvcourse.detection.box_diffusion import random_unit_boxes
from cvcourse.models.detector import STRIDES, PyramidBackbone
from cvcourse.models.diffusion_unet import timestep_embedding

DELTA_WEIGHTS = (2.0, 2.0, 1.0, 1.0)
MAX_LOG_SCALE = math.log(1000 / 16)  # the largest log change of a box side one stage may make (as torchvision)
LEVEL_NAMES = [f"p{int(math.log2(stride))}" for stride in STRIDES]


def apply_deltas(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """xyxy boxes (..., 4) moved by R-CNN deltas (..., 4): centre + (dx, dy) / 2 * size, size * exp(dw, dh)."""
    cx, cy, w, h = ops.box_convert(boxes, "xyxy", "cxcywh").unbind(-1)
    dx, dy, dw, dh = (deltas / deltas.new_tensor(DELTA_WEIGHTS)).unbind(-1)
    w_new, h_new = w * dw.clamp(max=MAX_LOG_SCALE).exp(), h * dh.clamp(max=MAX_LOG_SCALE).exp()
    return ops.box_convert(torch.stack([cx + dx * w, cy + dy * h, w_new, h_new], dim=-1), "cxcywh", "xyxy")


class RefinementStage(nn.Module):
    """One decoder stage (steps 1 to 4 of the module's description) for pooled features (B, N, C, r, r)."""

    def __init__(self, pooled_features: int, hidden: int, num_classes: int, heads: int) -> None:
        super().__init__()
        self.box_features = nn.Sequential(nn.Flatten(2), nn.Linear(pooled_features, hidden), nn.ReLU())
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.attention_norm = nn.LayerNorm(hidden)
        self.time_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.feed_forward = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden))
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.class_logits = nn.Linear(hidden, num_classes)
        self.box_deltas = nn.Linear(hidden, 4)
        nn.init.zeros_(self.box_deltas.weight)  # the untrained stage returns its input boxes
        nn.init.zeros_(self.box_deltas.bias)
        nn.init.constant_(self.class_logits.bias, -math.log(99))  # every box starts at probability 0.01

    def forward(self, pooled: torch.Tensor, previous: torch.Tensor | None,
                time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.box_features(pooled.flatten(2))
        if previous is not None:
            x = x + previous
        x = self.attention_norm(x + self.attention(x, x, x, need_weights=False)[0])
        scale, shift = self.time_scale_shift(time)[:, None].chunk(2, dim=-1)
        x = x * (scale + 1) + shift
        x = self.feed_forward_norm(x + self.feed_forward(x))
        return x, self.class_logits(x), self.box_deltas(x)


class BoxDenoiser(nn.Module):
    """``BoxDenoiser(num_classes)(images, boxes, t)`` -> one dict per stage: ``logits`` (B, N, K) and ``boxes``
    (B, N, 4), xyxy in pixels; the last stage's are the prediction. ``boxes`` (B, N, 4) are xyxy in pixels,
    ``t`` (B,) the timesteps in [0, ``timesteps``). With ``learned_proposals`` the model owns its N start boxes
    (``self.proposal_boxes(images)``) and is called with t = 0. ``features(images)`` runs the encoder once, and
    ``decode(features, boxes, t)`` the decoder, so sampling encodes an image once for all its steps."""

    def __init__(self, num_classes: int, *, width: int = 16, fpn_width: int = 64, hidden: int = 128,
                 stages: int = 2, roi_size: int = 7, heads: int = 4, timesteps: int = 1000,
                 learned_proposals: int | None = None, frozen_backbone: bool = False) -> None:
        super().__init__()
        if num_classes < 1 or hidden < 2 or hidden % 2 or stages < 1 or roi_size < 1:
            raise ValueError(f"BoxDenoiser needs num_classes, stages and roi_size >= 1 and an even hidden >= 2, got "
                             f"{num_classes}, {stages}, {roi_size} and {hidden}.")
        if learned_proposals is not None and learned_proposals < 1:
            raise ValueError(f"learned_proposals is a number of boxes (>= 1) or None, got {learned_proposals}.")
        self.num_classes, self.timesteps, self.hidden = num_classes, timesteps, hidden
        self.backbone = PyramidBackbone(width=width, fpn_width=fpn_width)
        self.frozen_backbone = frozen_backbone
        self.backbone.requires_grad_(not frozen_backbone)
        # a box of side canonical_scale (in pixels) is pooled from the middle level, P3; half of it from P2
        self.pooler = ops.MultiScaleRoIAlign(LEVEL_NAMES, output_size=roi_size, sampling_ratio=2,
                                             canonical_scale=64, canonical_level=3)
        self.time_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.stages = nn.ModuleList(RefinementStage(fpn_width * roi_size**2, hidden, num_classes, heads)
                                    for _ in range(stages))
        self.learned = None
        if learned_proposals is not None:  # random start boxes, so that no two proposals are the same
            self.learned = nn.Parameter(random_unit_boxes(learned_proposals))

    def train(self, mode: bool = True) -> BoxDenoiser:
        """As ``nn.Module.train``, except that a frozen backbone stays in evaluation mode."""
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder: the feature pyramid of a batch of images, named as the pooler reads it."""
        return dict(zip(LEVEL_NAMES, self.backbone(images)))

    def proposal_boxes(self, images: torch.Tensor) -> torch.Tensor:
        """The learned start boxes (B, N, 4) in pixels for ``images`` (a model with ``learned_proposals`` only)."""
        if self.learned is None:
            raise ValueError("this BoxDenoiser starts from noisy boxes; build it with learned_proposals=N to learn "
                             "its start boxes.")
        height, width = images.shape[-2:]
        unit = ops.box_convert(self.learned.clamp(0, 1), "cxcywh", "xyxy")
        return (unit * unit.new_tensor([width, height, width, height])).expand(len(images), -1, -1)

    def decode(self, features: dict[str, torch.Tensor], boxes: torch.Tensor,
               t: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The decoder's stages on boxes (B, N, 4) at timesteps t (B,), given the encoder's ``features``."""
        batch, count = boxes.shape[:2]
        image_size = tuple(STRIDES[0] * side for side in features[LEVEL_NAMES[0]].shape[-2:])
        self._check_boxes(boxes, t, batch)
        time = self.time_mlp(timestep_embedding(t, self.hidden))
        outputs, previous = [], None
        for stage in self.stages:
            pooled = self.pooler(features, list(boxes.detach().float().unbind(0)), [image_size] * batch)
            previous, logits, deltas = stage(pooled.view(batch, count, *pooled.shape[1:]), previous, time)
            refined = ops.clip_boxes_to_image(apply_deltas(boxes, deltas), image_size)
            outputs.append({"logits": logits, "boxes": refined})
            boxes = refined.detach()  # each stage learns its own refinement (learned proposals get the first's)
        return outputs

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, t: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return self.decode(self.features(images), boxes, t)

    def _check_boxes(self, boxes: torch.Tensor, t: torch.Tensor, batch: int) -> None:
        if boxes.ndim != 3 or boxes.shape[-1] != 4:
            raise ValueError(f"expected boxes (B, N, 4), xyxy in pixels, got {tuple(boxes.shape)}; stack each "
                             "image's N boxes (pad them to the same N with random boxes).")
        if t.shape != (batch,) or t.is_floating_point():
            raise ValueError(f"expected one integer timestep per image, t of shape ({batch},), got "
                             f"{tuple(t.shape)} ({t.dtype}).")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= self.timesteps):
            raise ValueError(f"timesteps must lie in [0, {self.timesteps}), got {int(t.min())}..{int(t.max())}.")
