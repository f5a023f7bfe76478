"""The noise predictor of the diffusion chapters: the course's U-Net, conditioned on the timestep and a label.

Ho et al. 2020 (Appendix B) feed the timestep to every residual block of their U-Net through the sinusoidal
position embedding of the Transformer (Vaswani et al. 2017, section 3.5), followed by a small MLP. A class
label (Ho & Salimans 2022) gets a learned embedding of the same size, *summed* with the timestep's; the sum,
through a SiLU, is the one embedding vector each ``ConvBlock`` of :class:`~cvcourse.models.UNet` projects to
a per-channel shift (or, in residual blocks, a scale and a shift). The label embedding has one extra row,
``num_classes``, the null label that classifier-free guidance trains and samples with.

``patch_size=2`` lets the U-Net see the image as a grid of 2x2 patches, each patch's pixels stacked as channels
(``pixel_unshuffle``: lossless, a 1x28x28 image becomes 4x14x14) and unstacked again at the output. Every level then
runs at half the resolution, for about a quarter of the computation, which moves the network's effort from
single pixels to the layout of the digit; "simple diffusion" (Hoogeboom et al. 2023, section 3.2) and DiT's
patches (Peebles & Xie 2023) do the same for large images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cvcourse.models.unet import UNet


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): ``[sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})]``.

    ``h = dim / 2`` frequencies ``w_i = max_period^(-i / (h - 1))`` from 1 down to 1 / max_period, geometric, as in
    the DDPM code (``get_timestep_embedding``; diffusers' with ``downscale_freq_shift=1``). Nearby timesteps get
    similar vectors, and every timestep a distinct one.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"the timestep embedding needs an even dim >= 2, got {dim}; e.g. embed_dim=128.")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half - 1, 1)
    angles = t.float()[:, None] * exponent.exp()[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class DiffusionUNet(nn.Module):
    """``DiffusionUNet(in_channels)`` predicts the noise ``eps`` in ``x_t`` (B, C, H, W) at timesteps ``t`` (B,).

    ``forward(x_t, t, labels=None)``: ``t`` is an int for the whole batch or one per sample; ``labels`` (B,) are
    classes in [0, num_classes], ``num_classes`` being the null label (``labels=None`` means all null). The
    output head starts at zero, so the untrained model predicts eps = 0 and the loss starts at 1, as in DDPM.
    ``block``, ``attention`` and ``depth`` build the :class:`~cvcourse.models.UNet`; ``patch_size`` (1 or 2) is
    described above, and images must have sides divisible by it. ``out_channels`` (default ``in_channels``) is the
    noise's channels when the input carries extra conditioning channels. ``timesteps`` is the schedule's T: a
    timestep outside [0, T) is refused rather than embedded as if it meant something.
    """

    def __init__(self, in_channels: int = 1, *, base_width: int = 32, depth: int = 2, num_classes: int | None = None,
                 embed_dim: int = 128, norm: str = "group", block: str = "conv", attention: bool = False,
                 patch_size: int = 1, timesteps: int = 1000, out_channels: int | None = None) -> None:
        super().__init__()
        if patch_size not in (1, 2):
            raise ValueError(f"patch_size must be 1 (pixels) or 2 (2x2 patches as channels), got {patch_size!r}.")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int or None (unconditional), got {num_classes!r}.")
        if embed_dim < 2 or embed_dim % 2:
            raise ValueError(f"embed_dim must be even and >= 2 (half sines, half cosines), got {embed_dim}.")
        self.in_channels, self.num_classes, self.embed_dim = in_channels, num_classes, embed_dim
        self.patch_size, self.timesteps = patch_size, timesteps
        self.time_mlp = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.label_embedding = nn.Embedding(num_classes + 1, embed_dim) if num_classes is not None else None
        self.act = nn.SiLU()
        self.out_channels = in_channels if out_channels is None else out_channels
        self.unet = UNet(in_channels * patch_size**2, self.out_channels * patch_size**2, depth=depth,
                         base_width=base_width, norm=norm,
                         embed_dim=embed_dim, block=block, attention=attention)
        nn.init.zeros_(self.unet.head.weight)
        nn.init.zeros_(self.unet.head.bias)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The conditioning vector (B, embed_dim): ``SiLU(MLP(sinusoid(t)) + label_embedding(labels))``."""
        embedding = self.time_mlp(timestep_embedding(t, self.embed_dim))
        if self.label_embedding is not None:
            embedding = embedding + self.label_embedding(labels)
        return self.act(embedding)

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if x_t.ndim == 4 and x_t.shape[1] != self.in_channels:
            raise ValueError(f"this DiffusionUNet takes {self.in_channels}-channel images, got {x_t.shape[1]} "
                             f"channels; build DiffusionUNet(in_channels={x_t.shape[1]}).")
        t = self._check_timesteps(x_t, t)
        labels = self._check_labels(x_t, labels)
        if self.patch_size == 1:
            return self.unet(x_t, self.embed(t, labels))
        if x_t.ndim != 4 or x_t.shape[-2] % self.patch_size or x_t.shape[-1] % self.patch_size:
            raise ValueError(f"with patch_size={self.patch_size} the images' height and width must be divisible by "
                             f"{self.patch_size}, got shape {tuple(x_t.shape)}; pad or resize them (e.g. 27 -> 28), "
                             "or build DiffusionUNet(patch_size=1).")
        patches = F.pixel_unshuffle(x_t, self.patch_size)
        return F.pixel_shuffle(self.unet(patches, self.embed(t, labels)), self.patch_size)

    def _check_timesteps(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
            raise TypeError(f"t must be an int or a tensor of timesteps, got {type(t).__name__}.")
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(len(x_t))
        if t.shape != (len(x_t),):
            raise ValueError(f"expected one timestep per image, shape ({len(x_t)},), got {tuple(t.shape)}; pass an "
                             "int for the whole batch or a 1-D tensor of length B.")
        if t.dtype == torch.bool or t.is_complex() or (t < 0).any():
            raise ValueError(f"timesteps must be non-negative numbers, got {t.tolist()}.")
        if (t >= self.timesteps).any():
            raise ValueError(f"timesteps must lie in [0, {self.timesteps}) (T = {self.timesteps}), got up to "
                             f"{t.max().item():g}: the schedule's steps are 0..T-1, e.g. torch.randint(0, T, (B,)); "
                             "build DiffusionUNet(timesteps=T) for another schedule length.")
        return t

    def _check_labels(self, x_t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("this DiffusionUNet is unconditional (num_classes=None) but got labels; build "
                                 "DiffusionUNet(num_classes=...) to condition on them, or pass labels=None.")
            return None
        if labels is None:
            return torch.full((len(x_t),), self.num_classes, dtype=torch.long, device=x_t.device)
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be an integer tensor of class indices, got "
                             f"{labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__}; "
                             "convert with labels.long().")
        if labels.shape != (len(x_t),):
            raise ValueError(f"expected one label per image, shape ({len(x_t)},), got {tuple(labels.shape)}.")
        if ((labels < 0) | (labels > self.num_classes)).any():
            raise ValueError(f"labels must lie in [0, {self.num_classes}] ({self.num_classes} is the null label "
                             f"of classifier-free guidance), got values in [{labels.min().item()}, "
                             f"{labels.max().item()}].")
        return labels.to(x_t.device)
