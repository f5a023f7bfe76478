"""The generative exercises: each accepts correct answers and names realistic mistakes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

from cvcourse import exercises
from cvcourse.exercises import ExerciseFailed
from cvcourse.exercises import generative as gen_exercises
from cvcourse.generative import gan, vae
from cvcourse.models.vae import reparameterize


def test_the_three_checkers_are_registered():
    assert {"reparameterize", "gaussian_kl", "generator_loss"} <= set(exercises.CHECKERS)


def failure_message(name, answer):
    with pytest.raises(ExerciseFailed) as failure:
        exercises.check(name, answer)
    return str(failure.value)


# ---------------------------------------------------------------------------------------------
# reparameterize


def reparameterize_with_numpy(mu, logvar, noise):
    """Right values, but through NumPy: no gradient can flow."""
    return torch.from_numpy(mu.numpy() + np.exp(logvar.numpy() / 2) * noise.numpy())


def test_reparameterize_accepts_the_course_function_and_hand_written_solutions(capsys):
    assert exercises.check("reparameterize", reparameterize)
    assert exercises.check("reparameterize", lambda mu, logvar, noise: mu + torch.exp(0.5 * logvar) * noise)
    assert exercises.check("reparameterize", lambda mu, logvar, noise: mu + logvar.exp().sqrt() * noise)
    assert capsys.readouterr().out.splitlines() == [
        "✓ reparameterize: all 3 cases match cvcourse.models.vae.reparameterize, and gradients reach mu and "
        "logvar"] * 3


def test_reparameterize_cases_have_batch_shapes_and_logvar_of_both_signs():
    cases = gen_exercises.reparameterize_cases()
    assert all(torch.equal(a, b) for (_, _, a, _), (_, _, b, _) in zip(cases, gen_exercises.reparameterize_cases()))
    assert [mu.ndim for _, mu, _, _ in cases] == [2, 1, 4]
    for _, mu, logvar, noise in cases:
        assert mu.shape == logvar.shape == noise.shape
        assert (logvar < 0).any() and (logvar > 0.5).any()  # sqrt(logvar) is NaN, variance and std differ
        right = reparameterize(mu, logvar, noise)
        for wrong, _ in gen_exercises.reparameterize_mistakes(mu, logvar, noise):
            assert not gen_exercises.close(wrong, right)


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda mu, logvar, noise: mu + logvar.exp() * noise, r"exp\(logvar\) is the variance sigma\^2"),
        (lambda mu, logvar, noise: mu + logvar.sqrt() * noise, r"its square root is NaN there"),
        (lambda mu, logvar, noise: mu + logvar * noise, r"log\(sigma\^2\), not the standard deviation"),
        (lambda mu, logvar, noise: mu, r"wrong z for a batch of 4 codes .*: z equals mu"),
        (lambda mu, logvar, noise: mu + noise, r"the noise is not scaled"),
        (lambda mu, logvar, noise: reparameterize(mu, logvar), r"two calls with the same .* gave different z"),
        (lambda mu, logvar, noise: mu + 0.5 * logvar.exp() * noise, r"scale the given noise by the standard deviation"),
        (lambda mu, logvar, noise: reparameterize(mu, logvar, noise).sum(-1),
         r"should return shape \(4, 3\) on a batch .* got \(4,\)"),
        (lambda mu, logvar, noise: reparameterize_with_numpy(mu, logvar, noise).numpy(),
         r"should return a torch.Tensor, got ndarray"),
        (lambda mu, logvar, noise: reparameterize(mu, logvar, noise).detach(),
         r"no gradient flows back through reparameterize's result on a batch of 4"),
        (lambda mu, logvar, noise: reparameterize(mu, logvar.detach(), noise), r"no gradient reaches logvar"),
        (lambda mu, logvar, noise: reparameterize(mu.detach(), logvar, noise), r"no gradient reaches mu"),
        (lambda mu, logvar, noise: reparameterize(mu, logvar, noise) + (logvar - logvar.detach()),
         r"the values are right but the gradient with respect to logvar is not"),
    ],
)
def test_reparameterize_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("reparameterize", wrong_answer)


def test_reparameterize_through_numpy_fails_on_the_gradient_case_naming_it():
    message = failure_message("reparameterize", reparameterize_with_numpy)
    assert message.startswith("reparameterize raised RuntimeError on a batch of 4 codes of 3 latent dimensions with "
                              "inputs that require gradients")


# ---------------------------------------------------------------------------------------------
# gaussian_kl


def gaussian_kl_from_distributions(mu, logvar):
    posterior = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return kl_divergence(posterior, prior)


def test_gaussian_kl_accepts_the_course_function_torch_distributions_and_a_hand_written_solution(capsys):
    assert exercises.check("gaussian_kl", vae.gaussian_kl)
    assert exercises.check("gaussian_kl", gaussian_kl_from_distributions)
    assert exercises.check("gaussian_kl", lambda mu, logvar: 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(dim=1))
    assert capsys.readouterr().out.splitlines() == [
        "✓ gaussian_kl: all 3 cases match cvcourse.generative.vae.gaussian_kl"] * 3


def test_gaussian_kl_cases_match_torch_distributions_and_tell_the_mistakes_apart():
    cases = gen_exercises.gaussian_kl_cases()
    assert all(torch.equal(a, b) for (_, _, a), (_, _, b) in zip(cases, gen_exercises.gaussian_kl_cases()))
    for _, mu, logvar in cases:
        kl = vae.gaussian_kl(mu, logvar)
        assert torch.allclose(kl, gaussian_kl_from_distributions(mu, logvar), rtol=1e-5, atol=1e-6)
        assert (kl >= 0).all() and mu.shape[0] != mu.shape[1]
    _, mu, logvar = cases[0]
    assert not mu.any() and not logvar.any() and torch.equal(vae.gaussian_kl(mu, logvar), torch.zeros(2))
    for _, mu, logvar in cases[1:]:
        assert (logvar < 0).any()
        right = vae.gaussian_kl(mu, logvar)
        assert not any(gen_exercises.close(wrong, right) for wrong, _ in gen_exercises.gaussian_kl_mistakes(mu, logvar))


def kl_terms(mu, logvar):
    """The terms inside -1/2 sum(...) of Kingma & Welling's Appendix B, per latent dimension."""
    return 1 + logvar - mu**2 - logvar.exp()


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda mu, logvar: -0.5 * kl_terms(mu, logvar).mean(1), r"this averages over the latent dimensions"),
        (lambda mu, logvar: -0.5 * kl_terms(mu, logvar).sum(),
         r"should return shape \(2,\) on the prior itself .* got \(\): this reduces over the batch too"),
        (lambda mu, logvar: -0.5 * kl_terms(mu, logvar).sum(0), r"got \(5,\): this sums over the batch \(dim 0\)"),
        (lambda mu, logvar: -0.5 * kl_terms(mu, logvar), r"got \(2, 5\): this is the KL of each latent dimension"),
        (lambda mu, logvar: -kl_terms(mu, logvar).sum(1), r"twice the KL: the closed form has a factor 1/2"),
        (lambda mu, logvar: 0.5 * kl_terms(mu, logvar).sum(1), r"every KL has the wrong sign"),
        (lambda mu, logvar: -0.5 * (1 + logvar - mu**2 - logvar).sum(1), r"neither the variance nor the standard"),
        (lambda mu, logvar: -0.5 * (1 + logvar - mu**2 - logvar**2).sum(1), r"neither the variance nor the standard"),
        (lambda mu, logvar: 0.5 * (logvar + mu**2 - 1 - logvar.log()).sum(1),
         r"wrong KL for the prior itself .*: the KL is NaN or inf: .*take no log or square root of it"),
        (lambda mu, logvar: (-logvar.log() + (logvar**2 + mu**2) / 2 - 0.5).sum(1), r"the KL is NaN or inf"),
        (lambda mu, logvar: -0.5 * (logvar - mu**2 - logvar.exp()).sum(1),
         r"wrong KL for the prior itself .*: the KL of the prior from itself is 0"),
        (lambda mu, logvar: -0.5 * (1 + logvar + mu**2 - logvar.exp()).sum(1),
         r"wrong KL for a batch of 4 .*: some KLs are negative"),
        (lambda mu, logvar: vae.gaussian_kl(mu, logvar) + logvar.sqrt().sum(1),
         r"wrong KL for a batch of 4 .*: the KL is NaN or inf"),
        (lambda mu, logvar: 1.1 * vae.gaussian_kl(mu, logvar), r"write the KL of N\(mu, sigma\^2\) from N\(0, 1\)"),
        (lambda mu, logvar: vae.gaussian_kl(mu, logvar).tolist(), r"should return a torch.Tensor, got list"),
    ],
)
def test_gaussian_kl_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("gaussian_kl", wrong_answer)


# ---------------------------------------------------------------------------------------------
# generator_loss


def test_generator_loss_accepts_the_course_function_and_stable_hand_written_solutions(capsys):
    assert exercises.check("generator_loss", gan.generator_loss)
    assert exercises.check("generator_loss", lambda fake_logits: -F.logsigmoid(fake_logits).mean())
    assert exercises.check("generator_loss", lambda fake_logits: F.softplus(-fake_logits).mean())
    assert capsys.readouterr().out.splitlines() == [
        "✓ generator_loss: all 4 cases match cvcourse.generative.gan.generator_loss, and so do its gradients where "
        "D rejects the fakes"] * 3


def test_generator_loss_cases_include_logits_where_the_naive_log_sigmoid_fails_and_the_minimax_loss_saturates():
    cases = gen_exercises.generator_loss_cases()
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(cases, gen_exercises.generator_loss_cases()))
    _, confident = cases[-1]
    assert confident.min() < -100 and confident.max() >= 100
    assert torch.log(torch.sigmoid(confident)).isinf().any() and gan.generator_loss(confident).isfinite()
    logits = gen_exercises.REJECTED_LOGITS.clone().requires_grad_()
    non_saturating, = torch.autograd.grad(gan.generator_loss(logits), logits)
    minimax, = torch.autograd.grad(gan.generator_loss(logits, "minimax"), logits)
    count = len(logits)
    assert (non_saturating.abs() > 0.99 / count).all() and (minimax.abs() < 0.01 / count).all()
    for _, fake_logits in cases[:3]:
        right = gan.generator_loss(fake_logits).item()
        assert all(abs(wrong - right) > 1e-3 for wrong, _ in gen_exercises.generator_loss_mistakes(fake_logits))


def ones(x):
    return torch.ones_like(x)


@pytest.mark.parametrize(
    "wrong_answer, hint",
    [
        (lambda x: gan.generator_loss(x, "minimax"), r"wrong loss for 8 logits around 0: this is the minimax loss"),
        (lambda x: torch.log(1 - torch.sigmoid(x)).mean(), r"this is the minimax loss"),
        (lambda x: F.binary_cross_entropy_with_logits(x, torch.zeros_like(x)), r"this uses the label 0"),
        (lambda x: F.binary_cross_entropy_with_logits(x, ones(x), reduction="sum"), r"this is a sum over the batch"),
        (lambda x: F.binary_cross_entropy_with_logits(torch.sigmoid(x), ones(x)), r"the sigmoid is applied twice"),
        (lambda x: F.binary_cross_entropy(x, ones(x)),
         r"raised RuntimeError on 8 logits around 0: all elements .*\n.*logits, any real number, not probabilities"),
        (lambda x: -torch.log(x).mean(), r"the loss is NaN or inf: D's outputs are logits"),
        (lambda x: -torch.log(torch.sigmoid(x)).mean(),
         r"wrong loss for confident logits .*: .*underflows .* F.logsigmoid or F.binary_cross_entropy_with_logits"),
        (lambda x: F.binary_cross_entropy(torch.sigmoid(x), ones(x)), r"wrong loss for confident logits .*underflows"),
        (lambda x: 2 * gan.generator_loss(x), r"G wants D to call its fakes real"),
        (lambda x: F.binary_cross_entropy_with_logits(x, ones(x), reduction="none"),
         r"should return one number, the mean over the batch, got shape \(8,\)"),
        (lambda x: gan.generator_loss(x).item(), r"should return the loss as a torch.Tensor, got float.*no .item\(\)"),
        (lambda x: gan.generator_loss(x).detach(),
         r"no gradient flows back through generator_loss's result on fakes that D rejects"),
    ],
)
def test_generator_loss_recognises_common_mistakes(wrong_answer, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        exercises.check("generator_loss", wrong_answer)


@pytest.mark.parametrize(
    "name, crashing, case",
    [
        ("reparameterize", lambda mu, logvar, noise: mu + logvar.exp() @ noise, "a batch of 4 codes of 3 latent"),
        ("gaussian_kl", lambda mu, logvar: vae.gaussian_kl(mu[0], logvar), "the prior itself"),
        ("generator_loss", lambda x: F.binary_cross_entropy_with_logits(x, torch.ones(3)), "8 logits around 0"),
    ],
)
def test_a_crash_names_the_case(name, crashing, case):
    with pytest.raises(ExerciseFailed, match=rf"^{name} raised (RuntimeError|ValueError) on {case}"):
        exercises.check(name, crashing)


@pytest.mark.parametrize(
    "name, wrong_answers, answer_snippets",
    [
        ("reparameterize",
         [lambda mu, logvar, noise: mu + logvar.exp() * noise, lambda mu, logvar, noise: mu + logvar.sqrt() * noise,
          lambda mu, logvar, noise: mu + 0.5 * logvar.exp() * noise],
         ["logvar / 2", "logvar/2", "0.5 * logvar", "0.5*logvar", "exp(0.5", "sqrt(exp", "exp().sqrt"]),
        ("gaussian_kl",
         [lambda mu, logvar: 1.1 * vae.gaussian_kl(mu, logvar), lambda mu, logvar: -vae.gaussian_kl(mu, logvar),
          lambda mu, logvar: -0.5 * (1 + logvar - mu**2 - logvar).sum(1)],
         ["1 + logvar - mu", "- logvar.exp()", "exp(logvar) + mu", "logvar.exp() + mu"]),
        ("generator_loss",
         [lambda x: 2 * gan.generator_loss(x), lambda x: gan.generator_loss(x, "minimax"),
          lambda x: -torch.log(torch.sigmoid(x)).mean()],
         ["ones_like", "softplus", "logsigmoid(x).mean", "-F.logsigmoid"]),
    ],
)
def test_failures_never_give_the_answer(name, wrong_answers, answer_snippets):
    for wrong_answer in wrong_answers:
        message = failure_message(name, wrong_answer)
        assert not any(snippet in message for snippet in answer_snippets), message
