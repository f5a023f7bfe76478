"""Training generative models on glyphs through the cache, and the generative bench entries, made tiny."""

import pytest
import torch

from cvcourse import bench
from cvcourse.config import Config
from cvcourse.experiments import generative as experiments
from cvcourse.generative import fit
from cvcourse.models import VAE, Generator

TINY = dict(image_size=28, train_size=64, sample_count=40, gan_batch_size=16, vae_batch_size=16, seed=0,
            checkpoint_every=2, latent_dim=8, gan_width=4, gan_steps=3, gan_lr=2e-4, failure_steps=2,
            vae_latent_dim=4, vae_width=4, vae_steps=3, vae_lr=1e-3, beta=1.0, vae_prior_components=3,
            target_precision=0.0, target_coverage=0.0, target_label_accuracy=0.0, target_psnr=0.0,
            target_vae_precision=0.0, target_mixture_precision=0.0)


pytestmark = pytest.mark.usefixtures("tiny_world")


def tiny_config(**changes) -> Config:
    return Config(chapter="03_gan", profile="smoke", device=torch.device("cpu"), settings={**TINY, **changes})


def test_glyph_gan_trains_once_then_loads_from_the_cache(capsys):
    generator, info = fit.glyph_gan(tiny_config())
    assert isinstance(generator, Generator) and not generator.training and info["steps"] == 3
    assert info["history"].names() and "building glyph-dcgan" in capsys.readouterr().out
    again, again_info = fit.glyph_gan(tiny_config())
    assert "building" not in capsys.readouterr().out and again_info["seconds"] == info["seconds"]
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), again.state_dict().values()))
    other, _ = fit.glyph_gan(tiny_config(gan_steps=4))  # another setting is another model
    assert "building" in capsys.readouterr().out
    assert not all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), other.state_dict().values()))


def test_conditional_gan_and_vae_from_the_cache():
    generator, _ = fit.glyph_gan(tiny_config(), conditional=True)
    assert generator.num_classes == 10
    images = generator.sample(10, labels=torch.arange(10), generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    model, info = fit.glyph_vae(tiny_config())
    assert isinstance(model, VAE) and info["steps"] == 3 and "reconstruction" in info["history"].names()
    mean_model, _ = fit.glyph_vae(tiny_config(), reduction="mean")
    assert not torch.equal(model.decoder[0].weight, mean_model.decoder[0].weight)


def test_vae_prior_is_a_mixture_fitted_to_the_training_codes():
    model, _ = fit.glyph_vae(tiny_config())
    codes = fit.glyph_vae_codes(tiny_config(), model)
    with torch.no_grad():
        torch.testing.assert_close(codes, model.encode(fit.training_glyphs(tiny_config())[0])[0])
    prior = fit.glyph_vae_prior(tiny_config(), codes)
    assert prior.weights.shape == (3,) and prior.means.shape == (3, 4)
    torch.testing.assert_close(prior.weights @ prior.means, codes.mean(0), atol=1e-4, rtol=0)  # EM keeps the mean


def test_an_interrupted_training_is_not_cached(monkeypatch):
    original = fit.Trainer.fit

    def stop_early(self, loader, *, steps=None, epochs=None, resume=False):
        return original(self, loader, steps=steps - 1, resume=resume)

    monkeypatch.setattr(fit.Trainer, "fit", stop_early)
    with pytest.raises(KeyboardInterrupt, match="resume"):
        fit.glyph_vae(tiny_config())


def test_requested_labels_cycle_through_the_classes():
    assert experiments.requested_labels(23).bincount().tolist() == [3, 3, 3] + [2] * 7


@pytest.mark.parametrize("name", ["gen.dcgan_glyphs", "gen.cgan_glyphs", "gen.vae_glyphs"])
def test_generative_bench_entries_run_and_report_their_reference_points(name, monkeypatch):
    monkeypatch.setattr(bench.config, "SETTINGS", {**bench.config.SETTINGS, "03_gan": {"smoke": TINY},
                                                   "04_vae": {"smoke": TINY}})
    result = bench.run_entry(name, profile="smoke")
    assert result.name == name and isinstance(result.value, float)
    details = result.details
    assert {"fcd", "fcd_held_out_real", "fcd_blurred_real", "fcd_noised_real", "train_s", "steps"} <= set(details)
    assert details["steps"] == 3 and details["fcd"] >= 0
    if name == "gen.vae_glyphs":
        assert 0 <= details["mixture_sample_precision"] <= 1 and details["mixture_fcd"] >= 0
