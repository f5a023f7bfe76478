"""Chapters 03 and 04's recipes: GANs and VAEs trained on glyphs through the cache, and their bench entries, tiny."""

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from cvcourse import bench, config
from cvcourse.models import VAE, Generator
from cvcourse.recipes import ch03_gan, ch04_vae
from cvcourse.recipes.glyphs import balanced_labels, training_glyphs
from cvcourse.recipes.judge import glyph_judge
from cvcourse.train import Trainer

TINY_GAN = dict(train_size=64, latent_dim=8, width=4, batch_size=16, steps=3)
TINY = {
    ch03_gan: dict(gan=TINY_GAN, sample_count=40, checkpoint_every=2, targets={},
                   balanced_game=dict(train_size=64, latent_dim=8, width=4, batch_size=16, steps=4, watch_every=2,
                                      watch_samples=20)),
    ch04_vae: dict(vae=dict(train_size=64, latent_dim=4, width=4, batch_size=16, steps=3, beta=1.0), gan=TINY_GAN,
                   prior_components=3, sample_count=40, checkpoint_every=2, targets={}),
}

pytestmark = pytest.mark.usefixtures("tiny_world")


def tiny_config(recipe, **changes) -> config.Config:
    settings = config.with_overrides(config.with_overrides(recipe.Settings(), TINY[recipe]), changes)
    return config.Config(recipe.CHAPTER, "smoke", torch.device("cpu"), settings)


def stop_one_step_early(monkeypatch):
    """Make every ``Trainer.fit`` return one step short, as a Ctrl+C would; returns the real ``fit``."""
    original = Trainer.fit

    def stop_early(self, loader, *, steps=None, epochs=None, resume=False):
        return original(self, loader, steps=steps - 1, resume=resume)

    monkeypatch.setattr(Trainer, "fit", stop_early)
    return original


def test_a_gan_trains_once_then_loads_from_the_cache(capsys):
    generator, info = ch03_gan.trained_gan(tiny_config(ch03_gan))
    assert isinstance(generator, Generator) and not generator.training and info["steps"] == 3
    assert info["history"].names() and "building glyph-dcgan" in capsys.readouterr().out
    again, again_info = ch03_gan.trained_gan(tiny_config(ch03_gan))
    assert "building" not in capsys.readouterr().out and again_info["seconds"] == info["seconds"]
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), again.state_dict().values()))
    other, _ = ch03_gan.trained_gan(tiny_config(ch03_gan, gan=dict(steps=4)))  # another recipe is another model
    assert "building" in capsys.readouterr().out
    assert not all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), other.state_dict().values()))
    ch03_gan.trained_gan(tiny_config(ch03_gan, sample_count=20, checkpoint_every=1))  # not part of the recipe
    assert "building" not in capsys.readouterr().out


def test_a_game_records_the_judges_readings_and_resumes_after_an_interruption(monkeypatch):
    cfg = tiny_config(ch03_gan)
    game = cfg.balanced_game
    glyph_judge(game.image_size)  # trained first: the interruption below is the game's
    original = stop_one_step_early(monkeypatch)
    with pytest.raises(KeyboardInterrupt, match="resume"):
        ch03_gan.played_gan(cfg, game)
    monkeypatch.setattr(Trainer, "fit", original)
    saved = list(Path(os.environ["CVCOURSE_CACHE"]).glob("glyph-gan-game-*.checkpoints/*.pt"))
    assert "step_0000003.pt" in [path.name for path in saved]  # what the interrupted game had trained is kept
    generator, info = ch03_gan.played_gan(cfg, game)  # resumes from it
    assert info["steps"] == game.steps
    steps, coverage = info["history"].series("class_coverage")
    assert steps == [2, 4] and all(0 <= value <= 1 for value in coverage)
    assert info["digit_shares"].shape == (2, 10)
    torch.testing.assert_close(info["digit_shares"].sum(dim=1), torch.ones(2))
    straight, straight_info = ch03_gan.played_gan(cfg, game, rebuild=True)  # the same game, uninterrupted
    assert straight_info["history"].series("class_coverage") == info["history"].series("class_coverage")
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), straight.state_dict().values()))
    runaway = dataclasses.replace(game, generator_lr=2e-3, discriminator_lr=2e-5)
    other, _ = ch03_gan.played_gan(cfg, runaway)  # other rates are another cache entry
    assert not all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), other.state_dict().values()))


def test_chapter_04_loads_chapter_03s_gan_from_the_cache(capsys):
    generator, _ = ch03_gan.trained_gan(tiny_config(ch03_gan))
    capsys.readouterr()
    same, _ = ch03_gan.trained_gan(tiny_config(ch04_vae))
    assert "building" not in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), same.state_dict().values()))
    for profile in config.PROFILES:  # the two chapters declare the same GAN in every profile
        assert ch03_gan.load(profile, device="cpu").gan == ch04_vae.load(profile, device="cpu").gan


def test_conditional_gan_and_vae_from_the_cache():
    generator, _ = ch03_gan.trained_gan(tiny_config(ch03_gan), conditional=True)
    assert generator.num_classes == 10
    images = generator.sample(10, labels=torch.arange(10), generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    model, info = ch04_vae.trained_vae(tiny_config(ch04_vae))
    assert isinstance(model, VAE) and info["steps"] == 3 and "reconstruction" in info["history"].names()
    mean_model, _ = ch04_vae.trained_vae(tiny_config(ch04_vae), reduction="mean")
    assert not torch.equal(model.decoder[0].weight, mean_model.decoder[0].weight)


def test_vae_prior_is_a_mixture_fitted_to_the_training_codes():
    cfg = tiny_config(ch04_vae)
    model, _ = ch04_vae.trained_vae(cfg)
    codes = ch04_vae.training_codes(cfg, model)
    with torch.no_grad():
        torch.testing.assert_close(codes, model.encode(training_glyphs(64, 28)[0])[0])
    prior = ch04_vae.mixture_prior(cfg, codes)
    assert prior.weights.shape == (3,) and prior.means.shape == (3, 4)
    torch.testing.assert_close(prior.weights @ prior.means, codes.mean(0), atol=1e-4, rtol=0)  # EM keeps the mean


def test_an_interrupted_training_is_not_cached(monkeypatch):
    stop_one_step_early(monkeypatch)
    with pytest.raises(KeyboardInterrupt, match="resume"):
        ch04_vae.trained_vae(tiny_config(ch04_vae))


def test_balanced_labels_cycle_through_the_classes():
    assert balanced_labels(23).bincount().tolist() == [3, 3, 3] + [2] * 7


@pytest.mark.parametrize("name", ["gen.dcgan_glyphs", "gen.cgan_glyphs", "gen.vae_glyphs"])
def test_generative_bench_entries_run_and_report_their_reference_points(name, monkeypatch):
    for recipe, tiny in TINY.items():
        monkeypatch.setattr(recipe, "OVERRIDES", {**recipe.OVERRIDES, "smoke": tiny})
    result = bench.run_entry(name, profile="smoke")
    assert result.name == name and isinstance(result.value, float) and result.target is None
    details = result.details
    assert {"fcd", "fcd_held_out_real", "fcd_blurred_real", "fcd_noised_real", "train_s", "steps"} <= set(details)
    assert details["steps"] == 3 and details["fcd"] >= 0
    if name == "gen.vae_glyphs":
        assert 0 <= details["mixture_confident_share"] <= 1 and details["mixture_fcd"] >= 0
    if name == "gen.cgan_glyphs":
        assert details["class_spread_vs_real"] > 0 and {"precision", "recall", "density", "coverage"} <= set(details)
