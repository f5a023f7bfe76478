"""Generative exercises: the VAE's reparameterize and gaussian_kl, and the GAN's non-saturating generator_loss.

Each checker runs the student's function on deterministic cases, compares values (and, where the point of the
exercise is that gradients flow, gradients) with the course's implementation (``cvcourse.generative.vae``,
``cvcourse.generative.gan``), and recognises the usual mistakes by recomputing them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from cvcourse.exercises import ExerciseFailed, call_answer, checker
from cvcourse.generative import gan, vae
from cvcourse.models.vae import reparameterize

RTOL, ATOL = 1e-4, 1e-5
NO_GRADIENT_HINT = (
    "the network learns through this result, so compute it from the inputs with torch operations only, without "
    ".detach(), .item(), .numpy(), torch.tensor(...) or torch.no_grad()"
)


def close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """``got`` equals ``expected`` up to float32 rounding (NaN and inf equal themselves)."""
    return torch.allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True)


def returned_tensor(result: Any, name: str, case: str, shape: torch.Size,
                    shape_hint: Callable[[torch.Size], str]) -> torch.Tensor:
    """The answer's ``result``, detached as float32, or ExerciseFailed when it is not a tensor of ``shape``."""
    if not isinstance(result, torch.Tensor):
        raise ExerciseFailed(f"{name} should return a torch.Tensor, got {type(result).__name__} on {case}; "
                             "compute it with torch operations")
    if result.shape != shape:
        raise ExerciseFailed(f"{name} should return shape {tuple(shape)} on {case}, got {tuple(result.shape)}: "
                             f"{shape_hint(result.shape)}")
    return result.detach().cpu().float()


def input_gradients(name: str, function: Callable[..., Any], case: str, args: list[torch.Tensor],
                    wrt: int) -> list[torch.Tensor]:
    """Gradients of ``sum(weights * function(*args))`` with respect to the first ``wrt`` args (zeros where none
    flows), with fixed unequal weights; ExerciseFailed when the result carries no gradient."""
    leaves = [arg.clone().requires_grad_(i < wrt) for i, arg in enumerate(args)]
    result = call_answer(name, function, case, *leaves)
    if not isinstance(result, torch.Tensor) or not result.requires_grad:
        raise ExerciseFailed(f"no gradient flows back through {name}'s result on {case}: {NO_GRADIENT_HINT}")
    result.backward(torch.linspace(0.5, 1.5, result.numel()).reshape(result.shape))
    return [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves[:wrt]]


def check_gradients(name: str, answer: Callable[..., Any], reference: Callable[..., Any], case: str,
                    args: list[torch.Tensor], names: list[str]) -> None:
    """Compare the answer's gradients with respect to the inputs ``names`` (the first args) with the reference's."""
    case = f"{case} with inputs that require gradients"
    got = input_gradients(name, answer, case, args, len(names))
    expected = input_gradients(name, reference, case, args, len(names))
    for input_name, got_gradient, expected_gradient in zip(names, got, expected):
        if not got_gradient.any():
            raise ExerciseFailed(f"no gradient reaches {input_name} on {case}: {NO_GRADIENT_HINT}")
        if not close(got_gradient.float(), expected_gradient):
            raise ExerciseFailed(f"the values are right but the gradient with respect to {input_name} is not, on "
                                 f"{case}: {NO_GRADIENT_HINT}")


# ---------------------------------------------------------------------------------------------
# reparameterize(mu, logvar, noise) -> z


def latent_codes(generator: torch.Generator, *shape: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mu, logvar, noise) of this shape; logvar from -3 to 2, so sigma is below 1 in some dimensions, above in
    others, and logvar is negative in some."""
    mu = torch.randn(shape, generator=generator)
    logvar = -3 + 5 * torch.rand(shape, generator=generator)
    return mu, logvar, torch.randn(shape, generator=generator)


def reparameterize_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, mu, logvar, noise), with and without a batch dimension."""
    generator = torch.Generator().manual_seed(0)
    return [
        ("a batch of 4 codes of 3 latent dimensions", *latent_codes(generator, 4, 3)),
        ("one code of 5 latent dimensions, without a batch dimension", *latent_codes(generator, 5)),
        ("a batch of latent maps of shape (2, 4, 3, 3)", *latent_codes(generator, 2, 4, 3, 3)),
    ]


def reparameterize_mistakes(mu: torch.Tensor, logvar: torch.Tensor,
                            noise: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """The z each usual mistake gives, with its hint."""
    return [
        (mu + logvar.exp() * noise,
         "exp(logvar) is the variance sigma^2, but the noise is scaled by the standard deviation sigma, its square "
         "root"),
        (mu + logvar.sqrt() * noise,
         "logvar is the log of the variance: it is negative wherever sigma < 1, and its square root is NaN there; "
         "undo the log before taking a root"),
        (mu + logvar * noise, "logvar is the log of the variance, log(sigma^2), not the standard deviation sigma"),
        (mu, ("z equals mu: the given noise is missing, so every sample is the mean and the VAE becomes a plain "
              "autoencoder")),
        (mu + noise, "the noise is not scaled: multiply it by the standard deviation sigma, recovered from logvar"),
    ]


def reparameterize_hint(got: torch.Tensor, answer: Callable[..., Any], case: str, mu: torch.Tensor,
                        logvar: torch.Tensor, noise: torch.Tensor) -> str:
    """Name the mistake that gives ``got``, or give a general hint."""
    hint = next((hint for wrong, hint in reparameterize_mistakes(mu, logvar, noise) if close(got, wrong)), None)
    if hint is not None:
        return hint
    again = call_answer("reparameterize", answer, case, mu.clone(), logvar.clone(), noise.clone())
    if not isinstance(again, torch.Tensor) or not close(got, again.detach().cpu().float()):
        return ("two calls with the same mu, logvar and noise gave different z: use the noise you are given "
                "instead of drawing new noise (torch.randn...), so that z is a function of its inputs")
    return "scale the given noise by the standard deviation sigma and shift it by mu; logvar is log(sigma^2)"


@checker("reparameterize")
def check_reparameterize(answer: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare values with ``cvcourse.models.vae.reparameterize`` on every case, and the gradients with
    respect to mu and logvar on the first: the point of the trick (Kingma & Welling 2014, section 2.4)."""
    cases = reparameterize_cases()
    for case, mu, logvar, noise in cases:
        result = call_answer("reparameterize", answer, case, mu.clone(), logvar.clone(), noise.clone())
        got = returned_tensor(result, "reparameterize", case, mu.shape,
                              lambda shape: "z is one sample per entry of mu, so it has the shape of mu")
        if not close(got, reparameterize(mu, logvar, noise)):
            raise ExerciseFailed(f"wrong z for {case}: {reparameterize_hint(got, answer, case, mu, logvar, noise)}")
    case, mu, logvar, noise = cases[0]
    check_gradients("reparameterize", answer, reparameterize, case, [mu, logvar, noise], ["mu", "logvar"])
    return f"all {len(cases)} cases match cvcourse.models.vae.reparameterize, and gradients reach mu and logvar"


# ---------------------------------------------------------------------------------------------
# gaussian_kl(mu (B, D), logvar (B, D)) -> (B,)


def gaussian_kl_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Deterministic (description, mu, logvar) of shape (B, D) with B != D, the prior itself first."""
    generator = torch.Generator().manual_seed(0)
    return [
        ("the prior itself (mu = 0, logvar = 0; B=2, D=5)", torch.zeros(2, 5), torch.zeros(2, 5)),
        ("a batch of 4 posteriors over 3 latent dimensions",
         torch.randn(4, 3, generator=generator), -2 + 3.5 * torch.rand(4, 3, generator=generator)),
        ("one posterior (B=1) over 8 dimensions with wide variances",
         3 * torch.randn(1, 8, generator=generator), -4 + 7 * torch.rand(1, 8, generator=generator)),
    ]


def kl_per_dimension(mu: torch.Tensor, variance: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, variance) || N(0, 1))`` of each dimension (Appendix B), from the variance and its log: the
    closed form a student writes, into which the usual mix-ups of logvar feed the wrong quantities."""
    return 0.5 * (variance + mu.pow(2) - 1 - log_variance)


def gaussian_kl_mistakes(mu: torch.Tensor, logvar: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """The KLs (B,) each usual mistake gives, with its hint."""
    per_dimension = kl_per_dimension(mu, logvar.exp(), logvar)
    logvar_mixed_up = ("logvar is the log of the variance, log(sigma^2), neither the variance nor the standard "
                       "deviation sigma: recover the variance from it")
    return [
        (per_dimension.mean(1), ("this averages over the latent dimensions, but the KL of independent dimensions is "
                                 "their sum")),
        (2 * per_dimension.sum(1), "twice the KL: the closed form has a factor 1/2 (Kingma & Welling, Appendix B)"),
        (-per_dimension.sum(1), ("every KL has the wrong sign: a KL divergence is never negative; check the sign in "
                                 "front of the sum")),
        (kl_per_dimension(mu, logvar, logvar).sum(1), logvar_mixed_up),
        (kl_per_dimension(mu, logvar.pow(2), logvar).sum(1), logvar_mixed_up),
    ]


def gaussian_kl_shape_hint(shape: torch.Size, mu: torch.Tensor) -> str:
    """Name the reduction behind a result of the wrong shape."""
    batch, latent = mu.shape
    if shape in ((), (1,)):
        return ("this reduces over the batch too: return one KL per sample, summed over the latent dimensions only "
                "(dim=1); the loss averages over the batch later")
    if shape == (latent,):
        return "this sums over the batch (dim 0) instead of over the latent dimensions (dim 1)"
    if shape == (batch, latent):
        return "this is the KL of each latent dimension: sum it over the latent dimensions (dim=1)"
    return "return one KL per sample, shape (B,), summed over the latent dimensions"


def gaussian_kl_hint(got: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> str:
    """Name the mistake that gives KLs ``got`` of the right shape, or a property they break, or a general hint."""
    if not got.isfinite().all():
        return ("the KL is NaN or inf: logvar is negative wherever sigma < 1 (and 0 at the prior), so take no log or "
                "square root of it; the variance is its exp")
    hint = next((hint for wrong, hint in gaussian_kl_mistakes(mu, logvar) if close(got, wrong)), None)
    if hint is not None:
        return hint
    if not mu.any() and not logvar.any():
        return ("the KL of the prior from itself is 0, not here: a term of the closed form is missing or has the "
                "wrong constant")
    if (got < 0).any():
        return "some KLs are negative, but a KL divergence never is: check the sign of every term"
    return ("write the KL of N(mu, sigma^2) from N(0, 1) for one dimension (Kingma & Welling 2014, Appendix B) with "
            "sigma^2 = exp(logvar), and sum it over the latent dimensions (dim=1)")


@checker("gaussian_kl")
def check_gaussian_kl(answer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Compare with ``cvcourse.generative.vae.gaussian_kl``, equal to ``torch.distributions.kl_divergence`` of
    ``Independent(Normal(mu, sigma), 1)`` from ``Independent(Normal(0, 1), 1)``."""
    cases = gaussian_kl_cases()
    for case, mu, logvar in cases:
        result = call_answer("gaussian_kl", answer, case, mu.clone(), logvar.clone())
        got = returned_tensor(result, "gaussian_kl", case, mu.shape[:1],
                              lambda shape: gaussian_kl_shape_hint(shape, mu))
        if not close(got, vae.gaussian_kl(mu, logvar)):
            raise ExerciseFailed(f"wrong KL for {case}: {gaussian_kl_hint(got, mu, logvar)}")
    return f"all {len(cases)} cases match cvcourse.generative.vae.gaussian_kl"


# ---------------------------------------------------------------------------------------------
# generator_loss(fake_logits) -> scalar

REJECTED_CASE = "fakes that D rejects (logits from -15 to -6)"
REJECTED_LOGITS = torch.tensor([-15.0, -12.0, -9.0, -6.0])
CONFIDENT_LOGIT = 50.0  # a case with logits beyond it tests numerical stability
LOGITS_NOT_PROBABILITIES = ("D's outputs are logits, any real number, not probabilities: the sigmoid turns them "
                            "into D's probability that the image is real")
STABILITY_HINT = ("on confident logits torch.log(torch.sigmoid(x)) underflows to log(0) = -inf, and clamping it "
                  "changes the loss: compute log sigmoid in one stable step with F.logsigmoid or "
                  "F.binary_cross_entropy_with_logits")


def generator_loss_cases() -> list[tuple[str, torch.Tensor]]:
    """Deterministic (description, fake_logits): ordinary logits, D's (B, 1) output, and confident logits."""
    generator = torch.Generator().manual_seed(0)
    return [
        ("8 logits around 0", 2 * torch.randn(8, generator=generator)),
        ("a discriminator output of shape (6, 1)", 3 * torch.randn(6, 1, generator=generator)),
        (REJECTED_CASE, REJECTED_LOGITS),
        ("confident logits from -150 to 100", torch.tensor([-150.0, -100.0, -30.0, 5.0, 30.0, 100.0])),
    ]


def generator_loss_mistakes(fake_logits: torch.Tensor) -> list[tuple[float, str]]:
    """The loss each usual mistake gives, with its hint."""
    real, fake = torch.ones_like(fake_logits), torch.zeros_like(fake_logits)
    return [
        (gan.generator_loss(fake_logits, "minimax").item(),
         ("this is the minimax loss E[log(1 - D(G(z)))] of the original game: it saturates, its gradient vanishes, "
          "when D rejects the fakes, as it does early in training; the non-saturating loss instead rewards G for "
          "making D call its fakes real")),
        (F.binary_cross_entropy_with_logits(fake_logits, fake).item(),
         ("this uses the label 0 ('fake'), which rewards G when D spots its fakes; G wants D to call them real")),
        (F.binary_cross_entropy_with_logits(fake_logits, real, reduction="sum").item(),
         ("this is a sum over the batch: average it, so that the loss, and the learning rate it needs, does not "
          "depend on the batch size")),
        (F.binary_cross_entropy_with_logits(fake_logits.sigmoid(), real).item(),
         ("the sigmoid is applied twice: binary_cross_entropy_with_logits applies it itself, so pass it the raw "
          "logits")),
    ]


def generator_loss_hint(got: float, fake_logits: torch.Tensor) -> str:
    """Name the mistake that gives loss ``got``, or give a general hint."""
    hint = next((hint for wrong, hint in generator_loss_mistakes(fake_logits)
                 if math.isclose(got, wrong, rel_tol=RTOL, abs_tol=ATOL)), None)
    if hint is not None:
        return hint
    if fake_logits.abs().max() > CONFIDENT_LOGIT:
        return STABILITY_HINT
    if not math.isfinite(got):
        return f"the loss is NaN or inf: {LOGITS_NOT_PROBABILITIES}"
    return ("G wants D to call its fakes real (Goodfellow et al. 2014, section 3): maximise the mean log-probability "
            "of 'real' that D gives the fakes, written as a loss to minimise")


def loss_value(result: Any, case: str) -> float:
    """The answer's loss as a float, or ExerciseFailed when it is not a tensor of one element."""
    if not isinstance(result, torch.Tensor):
        raise ExerciseFailed(f"generator_loss should return the loss as a torch.Tensor, got {type(result).__name__} "
                             f"on {case}; keep it a tensor (no .item()) so that it can be backpropagated")
    if result.numel() != 1:
        raise ExerciseFailed(f"generator_loss should return one number, the mean over the batch, got shape "
                             f"{tuple(result.shape)} on {case}")
    return result.item()


@checker("generator_loss")
def check_generator_loss(answer: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """Compare with ``cvcourse.generative.gan.generator_loss`` (non-saturating) on every case, confident logits
    included, and the gradients where D rejects the fakes: large there, where the minimax loss's vanish."""
    cases = generator_loss_cases()
    for case, fake_logits in cases:
        try:
            result = call_answer("generator_loss", answer, case, fake_logits.clone())
        except ExerciseFailed as failure:
            if "between 0 and 1" not in str(failure):
                raise
            raise ExerciseFailed(f"{failure}\n{LOGITS_NOT_PROBABILITIES}") from failure
        got = loss_value(result, case)
        if not math.isclose(got, gan.generator_loss(fake_logits).item(), rel_tol=RTOL, abs_tol=ATOL):
            raise ExerciseFailed(f"wrong loss for {case}: {generator_loss_hint(got, fake_logits)}")
    check_gradients("generator_loss", answer, gan.generator_loss, REJECTED_CASE, [REJECTED_LOGITS], ["fake_logits"])
    return (f"all {len(cases)} cases match cvcourse.generative.gan.generator_loss, and so do its gradients where D "
            "rejects the fakes")
