"""The GAN objective on logits against hand-written references, saturation, and gan_step in the Trainer (resume too)."""

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cvcourse.generative.gan import (
    GENERATOR_LOSSES,
    discriminator_loss,
    gan_step,
    generator_loss,
)
from cvcourse.models import Discriminator, Generator
from cvcourse.seeding import seed_everything
from cvcourse.train import Trainer

LATENT, CLASSES = 8, 4


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# the losses


def moderate_logits(n: int = 64, seed: int = 0) -> torch.Tensor:
    return 3 * torch.randn(n, generator=torch.Generator().manual_seed(seed))


def test_discriminator_loss_is_eq_1_negated():
    real, fake = moderate_logits(seed=0), moderate_logits(seed=1)
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    torch.testing.assert_close(discriminator_loss(real, fake), expected)


def test_discriminator_loss_is_2_log_2_at_chance_and_small_when_d_is_right():
    zeros = torch.zeros(5)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert discriminator_loss(torch.full((5,), 8.0), torch.full((5,), -8.0)).item() < 1e-3


def test_generator_losses_against_hand_written_references():
    fake = moderate_logits()
    torch.testing.assert_close(generator_loss(fake), -torch.log(torch.sigmoid(fake)).mean())
    torch.testing.assert_close(generator_loss(fake, "non_saturating"), -torch.log(torch.sigmoid(fake)).mean())
    torch.testing.assert_close(generator_loss(fake, "minimax"), torch.log(1 - torch.sigmoid(fake)).mean())
    assert set(GENERATOR_LOSSES) == {"non_saturating", "minimax"}


def logit_gradient(logit: float, kind: str) -> float:
    x = torch.tensor([logit], requires_grad=True)
    generator_loss(x, kind).backward()
    return x.grad.item()


def test_minimax_saturates_when_d_rejects_the_fakes_and_non_saturating_does_not():
    """At D(G(z)) = sigmoid(-10) ~ 4.5e-5, d/dx of -log sigmoid(x) is ~ -1, of log(1 - sigmoid(x)) ~ -4.5e-5."""
    non_saturating, minimax = logit_gradient(-10.0, "non_saturating"), logit_gradient(-10.0, "minimax")
    assert non_saturating == pytest.approx(-(1 - torch.sigmoid(torch.tensor(-10.0)).item()))
    assert minimax == pytest.approx(-torch.sigmoid(torch.tensor(-10.0)).item())
    assert non_saturating < 0 and minimax < 0  # both push the logit up, towards "real"
    assert abs(non_saturating) > 1e4 * abs(minimax)


def test_losses_stay_finite_at_extreme_logits():
    extreme = torch.tensor([100.0, -100.0], requires_grad=True)
    losses = [discriminator_loss(extreme, extreme), generator_loss(extreme, "non_saturating"),
              generator_loss(extreme, "minimax")]
    for loss in losses:
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, extreme)
        assert torch.isfinite(grad).all()
    # a confidently wrong D pays the full logit: -log sigmoid(-100) = 100
    assert discriminator_loss(torch.tensor([-100.0]), torch.tensor([100.0])).item() == pytest.approx(200.0)
    assert generator_loss(torch.tensor([-100.0])).item() == pytest.approx(100.0)
    assert generator_loss(torch.tensor([100.0]), "minimax").item() == pytest.approx(-100.0)


def test_unknown_generator_loss_names_the_choices():
    with pytest.raises(ValueError, match="Unknown generator loss 'hinge'; choose one of non_saturating, minimax"):
        generator_loss(torch.zeros(3), "hinge")
    with pytest.raises(ValueError, match="Unknown generator loss 'wasserstein'; choose one of non_saturating"):
        gan_step("wasserstein")


def test_gan_step_refuses_d_steps_below_1():
    with pytest.raises(ValueError, match="d_steps"):
        gan_step(d_steps=0)


# ---------------------------------------------------------------------------------------------
# gan_step in the Trainer


def make_run(checkpoint_dir=None, *, loss: str = "non_saturating", conditional: bool = False, d_steps: int = 1,
             step_fn=None):
    seed_everything(0)
    num_classes = CLASSES if conditional else None
    G = Generator(LATENT, image_size=28, width=8, num_classes=num_classes)
    D = Discriminator(image_size=28, width=8, num_classes=num_classes)
    data = TensorDataset(torch.rand(24, 1, 28, 28), torch.randint(0, CLASSES, (24,)))
    loader = DataLoader(data, batch_size=8, shuffle=True)
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
                  for name, net in (("G", G), ("D", D))}
    trainer = Trainer({"G": G, "D": D}, optimizers, step_fn or gan_step(loss, conditional=conditional, d_steps=d_steps),
                      device="cpu", checkpoint_dir=checkpoint_dir, progress=False)
    return trainer, loader


@pytest.mark.parametrize("loss, conditional, d_steps", [("non_saturating", False, 1), ("minimax", True, 2)])
def test_gan_step_trains_both_players_and_logs_finite_values(loss, conditional, d_steps):
    trainer, loader = make_run(loss=loss, conditional=conditional, d_steps=d_steps)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in trainer.models.items()}
    history = trainer.fit(loader, steps=3)
    assert history.names() == ["d_loss", "g_loss", "D(x)", "D(G(z))"]
    for name in history.names():
        assert len(history.series(name)[1]) == 3 and all(map(math.isfinite, history.series(name)[1]))
    assert all(0 < history.last(name) < 1 for name in ("D(x)", "D(G(z))"))
    assert all(value > 0 for value in history.series("d_loss")[1])  # a sum of two cross-entropies
    assert all((value < 0) == (loss == "minimax") for value in history.series("g_loss")[1])  # log(1 - D) < 0
    for name, net in trainer.models.items():
        assert all(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), name
    adam_steps = {name: max(state["step"].item() for state in opt.state.values())
                  for name, opt in trainer.optimizers.items()}
    assert adam_steps == {"G": 3, "D": 3 * d_steps}


def test_conditional_gan_step_passes_the_batch_labels_to_both_players():
    seen = {"G": [], "D": []}
    trainer, loader = make_run(conditional=True)
    for name, net in trainer.models.items():
        net.register_forward_pre_hook(lambda module, args, kwargs, name=name: seen[name].append(
            args[1] if len(args) > 1 else kwargs["labels"]), with_kwargs=True)
    batch_labels = []
    loader = [(images, labels) for images, labels in loader]
    step = gan_step(conditional=True)
    trainer.step_fn = lambda batch, ctx: batch_labels.append(batch[1]) or step(batch, ctx)
    trainer.fit(loader, steps=2)
    assert len(seen["G"]) == 2 and len(seen["D"]) == 6  # D sees real, detached fake, then fake for G
    for i, labels in enumerate(batch_labels):
        assert torch.equal(seen["G"][i], labels)
        assert all(torch.equal(seen["D"][3 * i + k], labels) for k in range(3))


def interrupt_at(step_number: int):
    """gan_step, pressing Ctrl+C when it reaches ``step_number``."""
    normal = gan_step(conditional=True)

    def step(batch, ctx):
        if ctx.step + 1 == step_number:
            raise KeyboardInterrupt
        return normal(batch, ctx)

    return step


def test_interrupted_and_resumed_gan_matches_uninterrupted(tmp_path):
    total = 7  # 3 batches per epoch: the interrupt falls mid-epoch
    reference, loader = make_run(tmp_path / "a", conditional=True)
    expected = reference.fit(loader, steps=total)

    interrupted, loader = make_run(tmp_path / "b", conditional=True, step_fn=interrupt_at(5))
    interrupted.fit(loader, steps=total)
    assert interrupted.step == 4 and interrupted.latest_checkpoint().name == "step_0000004.pt"

    resumed, loader = make_run(tmp_path / "b", conditional=True)
    history = resumed.fit(loader, steps=total, resume=True)
    for name in expected.names():
        assert history.series(name) == expected.series(name)  # exact, not approximately
    for name in ("G", "D"):  # parameters and batch norm's running statistics
        want, got = reference.models[name].state_dict(), resumed.models[name].state_dict()
        assert all(torch.equal(want[key], got[key]) for key in want), name


@pytest.mark.parametrize("discriminator_lr", [None, 2e-6])
def test_train_gan_gives_the_discriminator_its_own_rate_only_when_asked(discriminator_lr):
    from cvcourse.generative.training import train_gan

    images, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))  # [0, 1], as train_gan takes them
    trainer = train_gan(Generator(LATENT, width=4), Discriminator(width=4), images, labels, steps=2, batch_size=4,
                        lr=2e-3, discriminator_lr=discriminator_lr, progress=False)
    rates = {name: optimizer.param_groups[0]["lr"] for name, optimizer in trainer.optimizers.items()}
    assert rates == {"G": 2e-3, "D": 2e-3 if discriminator_lr is None else discriminator_lr}
