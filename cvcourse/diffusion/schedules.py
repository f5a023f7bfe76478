"""Noise schedules: the betas of the forward process and every quantity derived from them.

The forward process (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eq. 2) adds Gaussian noise
in ``T`` small steps, ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)``. With ``alpha_t = 1 - beta_t``
and ``alpha_bar_t = prod_{s <= t} alpha_s`` the steps compose into one jump from the data (eq. 4)::

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)

and the posterior of one step given the clean image is Gaussian too (eq. 6-7)::

    q(x_{t-1} | x_t, x_0) = N(mu_tilde_t, beta_tilde_t I)
    beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    mu_tilde_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t

Timesteps are indices ``t = 0, ..., T - 1`` as in code (the paper counts 1..T): index 0 is the first, lightest
noising step, and ``alpha_bar_prev[0] = 1`` stands for the clean image. Everything is computed in float64
(``alpha_bar`` of a cosine schedule falls to ~1e-9, and 1 - alpha_bar near 1e-4 loses digits in float32), then
cast to the dtype of the tensor it multiplies.
"""

from __future__ import annotations

import math

import torch


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Betas rising linearly from ``beta_start`` to ``beta_end`` (Ho et al. 2020, section 4: 1e-4 to 0.02, T = 1000).

    Those endpoints suit T = 1000; with fewer steps scale both by ``1000 / T`` to reach about the same final noise.
    """
    _check_T(T)
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule (Nichol & Dhariwal 2021, "Improved DDPM", eq. 17).

    ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2``, and
    ``beta_t = 1 - alpha_bar(t + 1) / alpha_bar(t)`` clipped to ``max_beta`` (the last steps would reach 1).
    The offset ``s`` keeps the first betas from being too small. Destroys information more slowly than the
    linear schedule, which wastes its last steps on almost pure noise at low resolution.
    """
    _check_T(T)
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


class NoiseSchedule:
    """The betas and every derived quantity, as 1-D tensors indexed by the timestep ``t`` in [0, T).

    ``betas, alphas, alpha_bar, alpha_bar_prev, sqrt_alpha_bar, sqrt_one_minus_alpha_bar``, the posterior's
    variance ``beta_tilde`` and mean coefficients ``mu_tilde_coef_x0, mu_tilde_coef_xt`` (eq. 7), and
    ``snr = alpha_bar / (1 - alpha_bar)``, the signal-to-noise ratio of x_t.
    """

    def __init__(self, betas: torch.Tensor) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor (one beta per timestep), got shape "
                             f"{tuple(betas.shape)}; build them with linear_betas(T) or cosine_betas(T).")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError(f"every beta must lie in (0, 1), got values in [{betas.min().item():.3g}, "
                             f"{betas.max().item():.3g}]; use a positive beta_start and clip with max_beta < 1.")
        self.betas = betas
        self.alphas = 1 - betas
        self.alpha_bar = torch.cumprod(self.alphas, dim=0)
        self.alpha_bar_prev = torch.cat([betas.new_ones(1), self.alpha_bar[:-1]])
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_one_minus_alpha_bar = (1 - self.alpha_bar).sqrt()
        self.beta_tilde = betas * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)
        self.mu_tilde_coef_x0 = self.alpha_bar_prev.sqrt() * betas / (1 - self.alpha_bar)
        self.mu_tilde_coef_xt = self.alphas.sqrt() * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)
        self.snr = self.alpha_bar / (1 - self.alpha_bar)

    @classmethod
    def linear(cls, T: int = 1000, **kwargs: float) -> NoiseSchedule:
        """``NoiseSchedule(linear_betas(T, ...))``."""
        return cls(linear_betas(T, **kwargs))

    @classmethod
    def cosine(cls, T: int = 1000, **kwargs: float) -> NoiseSchedule:
        """``NoiseSchedule(cosine_betas(T, ...))``."""
        return cls(cosine_betas(T, **kwargs))

    @classmethod
    def named(cls, name: str, T: int = 1000) -> NoiseSchedule:
        """The ``"linear"`` or ``"cosine"`` schedule of ``T`` steps, by name (as a recipe's settings give it)."""
        makers = {"linear": cls.linear, "cosine": cls.cosine}
        if name not in makers:
            raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(makers)}.")
        return makers[name](T)

    @property
    def T(self) -> int:
        """The number of diffusion steps."""
        return len(self.betas)

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: str | torch.device) -> NoiseSchedule:
        """Move every tensor to ``device`` (in place; returns self); float32 on MPS, which has no float64."""
        device = torch.device(device)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        for name, value in vars(self).items():
            setattr(self, name, value.to(device, dtype))
        return self

    def check_timesteps(self, t: int | torch.Tensor, batch_size: int) -> torch.Tensor:
        """``t`` (an int, a 0-d tensor or one timestep per sample) as a long tensor of shape (batch_size,)."""
        if isinstance(t, bool) or not isinstance(t, (int, torch.Tensor)):
            raise TypeError(f"timesteps must be an int or an integer tensor, got {type(t).__name__}.")
        t = torch.as_tensor(t)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"timesteps must be integers in [0, {self.T}), got dtype {t.dtype}; convert with t.long().")
        if t.ndim == 0:
            t = t.expand(batch_size)
        if t.shape != (batch_size,):
            raise ValueError(f"expected one timestep per sample, shape ({batch_size},), got {tuple(t.shape)}; "
                             "pass an int for the whole batch or a 1-D tensor of length B.")
        if ((t < 0) | (t >= self.T)).any():
            raise ValueError(f"timesteps must lie in [0, T) = [0, {self.T}), got values in [{t.min().item()}, "
                             f"{t.max().item()}]; code counts from 0, so the paper's t = T is index T - 1.")
        return t.long()

    def gather(self, values: torch.Tensor, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values[t]`` shaped (B, 1, 1, ...) to broadcast over ``like`` (B, ...), on its device and in its dtype."""
        picked = values[self.check_timesteps(t, len(like)).to(values.device)]
        return picked.to(like.device, like.dtype).reshape(-1, *[1] * (like.ndim - 1))

    def alpha_bar_at(self, t: int, like: torch.Tensor) -> torch.Tensor:
        """``alpha_bar[t]`` as a scalar tensor in ``like``'s dtype, with ``t = -1`` standing for the clean image.

        ``alpha_bar = 1`` there (as ``alpha_bar_prev[0]``): DDIM's last step lands on x_0, inversion starts from it.
        """
        if isinstance(t, bool) or not isinstance(t, int) or not -1 <= t < self.T:
            raise ValueError(f"expected an int timestep in [-1, {self.T}) (-1 is the clean image), got {t!r}.")
        value = self.alpha_bar[t] if t >= 0 else self.alpha_bar.new_ones(())
        return value.to(like.device, like.dtype)

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, betas {self.betas[0].item():.3g} -> {self.betas[-1].item():.3g}, "
                f"alpha_bar_T={self.alpha_bar[-1].item():.3g})")


def check_timestep(t: int, T: int, name: str = "t") -> int:
    """``t`` itself if it is an int timestep in [0, T), else a ValueError naming ``name``."""
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < T:
        raise ValueError(f"{name} must be an int in [0, T) = [0, {T}), got {t!r}.")
    return t


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T (the number of diffusion steps) must be a positive int, got {T!r}; e.g. T=1000.")
