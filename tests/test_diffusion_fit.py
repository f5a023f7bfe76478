"""Training the diffusion models on glyphs through the cache, cached samples, step timing, and the diff.* bench
entries, made tiny."""

import pytest
import torch

from cvcourse import bench, config
from cvcourse.config import Config
from cvcourse.diffusion import NoiseSchedule, ddim_sample, ddpm_sample, to_image_range
from cvcourse.diffusion import fit
from cvcourse.models import DiffusionUNet, KLAutoencoder

TINY = dict(image_size=28, train_size=64, sample_count=12, batch_size=16, seed=0, checkpoint_every=2,
            schedule="linear", timesteps=20, unet_width=4, unet_depth=2, unet_block="residual", unet_attention=True,
            patch_size=2, steps=4, lr=1e-3, min_snr_gamma=5.0, ema_decay=0.9,
            snapshot_every=2, snapshot_count=6, ddim_steps=5, ddim_eta=1.0, ddim_table_steps=[2, 5], speed_count=2,
            inversion_count=4, drop_label_prob=0.1, guidance_scales=[0.0, 1.0], guidance_scale=1.0,
            latent_channels=4, autoencoder_width=4, autoencoder_beta=1e-3, autoencoder_steps=3,
            autoencoder_lr=1e-3, latent_unet_width=8, latent_unet_depth=1, latent_steps=4, latent_lr=1e-3,
            guide_unet_width=2, guide_steps=2, guide_ema_decay=0.5, autoguidance_scales=[0.0, 1.0],
            autoguidance_scale=1.0, target_precision=0.0, target_autoguided_precision=0.0, target_coverage=0.0,
            target_fcd_ratio=None, target_label_accuracy=None,
            target_autoencoder_psnr=0.0, target_latent_precision=0.0, target_speedup=0.0)


pytestmark = pytest.mark.usefixtures("tiny_world")


def tiny_config(**changes) -> Config:
    return Config(chapter="05_diffusion", profile="smoke", device=torch.device("cpu"), settings={**TINY, **changes})


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_glyph_diffusion_trains_once_keeps_the_ema_weights_and_snapshots(capsys):
    model, info = fit.glyph_diffusion(tiny_config())
    assert isinstance(model, DiffusionUNet) and not model.training and model.num_classes is None
    assert info["steps"] == 4 and info["snapshot_steps"] == [2, 4]
    assert info["galleries"].shape == (2, 6, 1, 28, 28)  # snapshot_count < GALLERY_SIZE: all of them
    assert info["history"].series("fcd")[0] == [2, 4] and "loss" in info["history"].names()
    assert "building glyph-ddpm" in capsys.readouterr().out
    again, again_info = fit.glyph_diffusion(tiny_config())
    assert "building" not in capsys.readouterr().out and same_weights(model, again)
    assert torch.equal(again_info["galleries"], info["galleries"])
    raw, _ = fit.glyph_diffusion(tiny_config(ema_decay=0.5))  # another setting is another model
    assert not same_weights(model, raw) and "building glyph-ddpm" in capsys.readouterr().out
    unweighted, _ = fit.glyph_diffusion(tiny_config(min_snr_gamma=None))  # plain L_simple
    assert "building glyph-ddpm" in capsys.readouterr().out and not same_weights(model, unweighted)


def test_the_guide_is_a_narrower_shorter_trained_version_of_the_model(capsys):
    cfg = tiny_config()
    model, _ = fit.glyph_diffusion(cfg)
    capsys.readouterr()
    guide, info = fit.glyph_guide(cfg)
    assert "building glyph-guide-ddpm" in capsys.readouterr().out and not guide.training
    assert info["steps"] == cfg.guide_steps == 2 and info["snapshot_steps"] == [2]
    assert [name for name, _ in guide.named_parameters()] == [name for name, _ in model.named_parameters()]
    assert guide.num_parameters < model.num_parameters and guide.patch_size == model.patch_size
    assert guide.unet.head.in_channels == cfg.guide_unet_width < model.unet.head.in_channels == cfg.unet_width
    again, _ = fit.glyph_guide(cfg)
    assert "building" not in capsys.readouterr().out and same_weights(guide, again)
    fit.glyph_guide(tiny_config(guide_steps=4))  # another guide setting is another guide; the model stays cached
    assert "building glyph-guide-ddpm" in capsys.readouterr().out
    fit.glyph_diffusion(tiny_config(guide_steps=4))
    assert "building" not in capsys.readouterr().out


def test_the_cached_weights_are_the_ema_of_the_training_weights(monkeypatch):
    trained = {}
    original = fit._keep_ema

    def spy(model, trainer):
        trained["raw"] = {name: value.clone() for name, value in model.state_dict().items()}
        trained["ema"] = trainer.ema.module.state_dict()
        original(model, trainer)

    monkeypatch.setattr(fit, "_keep_ema", spy)
    model, _ = fit.glyph_diffusion(tiny_config())
    assert all(torch.equal(value, trained["ema"][name]) for name, value in model.state_dict().items())
    assert not all(torch.equal(value, trained["raw"][name]) for name, value in model.state_dict().items())


def test_conditional_model_learns_with_the_null_label():
    model, info = fit.glyph_diffusion(tiny_config(), conditional=True)
    assert model.num_classes == 10 and model.label_embedding.num_embeddings == 11
    assert info["galleries"].shape[1] == 6


def test_an_interrupted_training_is_not_cached_and_resumes(monkeypatch, capsys):
    original = fit.Trainer.fit

    def stop_early(self, loader, *, steps=None, epochs=None, resume=False):
        return original(self, loader, steps=steps - 1, resume=resume)

    monkeypatch.setattr(fit.Trainer, "fit", stop_early)
    with pytest.raises(KeyboardInterrupt, match="resume"):
        fit.glyph_diffusion(tiny_config())
    monkeypatch.setattr(fit.Trainer, "fit", original)
    model, info = fit.glyph_diffusion(tiny_config())
    assert info["steps"] == 4
    assert "fcd" in info["history"].names()


def test_latent_diffusion_trains_on_scaled_latents_of_a_cached_autoencoder(capsys):
    model, space, info = fit.glyph_latent_diffusion(tiny_config())
    assert isinstance(space.autoencoder, KLAutoencoder) and model.in_channels == 4
    assert space.latent_shape(3) == (3, 4, 7, 7) and space.scale_factor > 0
    assert info["steps"] == 4 and info["galleries"].shape == (2, 6, 1, 28, 28)
    out = capsys.readouterr().out
    assert "building glyph-autoencoder" in out and "building glyph-latent-ddpm" in out
    again, again_space, _ = fit.glyph_latent_diffusion(tiny_config())
    assert "building" not in capsys.readouterr().out and same_weights(model, again)
    assert again_space.scale_factor == space.scale_factor
    images = again_space.decode(ddim_sample(again, fit.glyph_schedule(tiny_config()), again_space.latent_shape(2),
                                            steps=3, clip_x0=False))
    assert images.shape == (2, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    faster, _, _ = fit.glyph_latent_diffusion(tiny_config(latent_lr=1e-2))  # only the second stage retrains
    out = capsys.readouterr().out
    assert "building glyph-latent-ddpm" in out and "building glyph-autoencoder" not in out
    assert not same_weights(model, faster)


def test_glyph_samples_are_cached_per_model_and_sampler_setting(capsys):
    torch.manual_seed(0)
    model, schedule = DiffusionUNet(1, base_width=4, depth=1).eval(), NoiseSchedule.linear(10)
    images, seconds = fit.glyph_samples(model, schedule, (3, 1, 8, 8), seed=5)
    expected = to_image_range(ddpm_sample(model, schedule, (3, 1, 8, 8), generator=torch.Generator().manual_seed(5)))
    torch.testing.assert_close(images, expected)
    assert seconds > 0 and "building glyph-samples" in capsys.readouterr().out
    again, again_seconds = fit.glyph_samples(model, schedule, (3, 1, 8, 8), seed=5)
    assert torch.equal(again, images) and again_seconds == seconds and "building" not in capsys.readouterr().out
    ddim, _ = fit.glyph_samples(model, schedule, (3, 1, 8, 8), sampler="ddim", steps=4, seed=5)
    expected = to_image_range(ddim_sample(model, schedule, (3, 1, 8, 8), steps=4,
                                          generator=torch.Generator().manual_seed(5)))
    torch.testing.assert_close(ddim, expected)
    with torch.no_grad():
        model.unet.head.bias.fill_(0.1)  # a changed model samples afresh
    changed, _ = fit.glyph_samples(model, schedule, (3, 1, 8, 8), seed=5)
    assert "building" in capsys.readouterr().out and not torch.equal(changed, images)
    with pytest.raises(ValueError, match="'ddpm' or 'ddim'"):
        fit.glyph_samples(model, schedule, (3, 1, 8, 8), sampler="euler")


def test_seconds_per_step_times_without_touching_the_model():
    torch.manual_seed(0)
    model, schedule = DiffusionUNet(1, base_width=4, depth=1), NoiseSchedule.linear(10)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    calls = []
    seconds = fit.seconds_per_step(model, schedule, torch.randn(4, 1, 8, 8), repeats=3, warmup=1,
                                   encode=lambda x: calls.append(1) or x)
    assert seconds > 0 and len(calls) == 4  # the encoder runs inside every timed step
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    with pytest.raises(ValueError, match="repeats"):
        fit.seconds_per_step(model, schedule, torch.randn(4, 1, 8, 8), repeats=0)


def test_latent_step_times_compare_one_u_net_on_latents_and_on_pixels():
    cfg = tiny_config()
    latent_model, space, _ = fit.glyph_latent_diffusion(cfg)
    twin = fit.latent_unet(cfg, in_channels=1)
    # the same U-Net: only the first and last convolutions see the number of input channels
    assert [name for name, _ in twin.named_parameters()] == [name for name, _ in latent_model.named_parameters()]
    assert twin.patch_size == latent_model.patch_size == 1 and fit.pixel_unet(cfg).patch_size == 2
    before = [value.clone() for value in latent_model.state_dict().values()]
    times = fit.latent_step_times(cfg, latent_model, space, torch.rand(8, 1, 28, 28))
    assert set(times) == {"latent", "pixel", "chapter05_pixel", "speedup"} and min(times.values()) > 0
    assert times["speedup"] == pytest.approx(times["pixel"] / times["latent"])
    assert all(torch.equal(a, b) for a, b in zip(before, latent_model.state_dict().values()))


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_every_profile_builds_its_pixel_guide_and_latent_u_nets(profile):
    cfg = config.load("05_diffusion", profile)
    x_t, t = torch.randn(2, 1, cfg.image_size, cfg.image_size), torch.tensor([0, cfg.timesteps - 1])
    assert fit.pixel_unet(cfg, num_classes=10)(x_t, t, torch.tensor([3, 10])).shape == x_t.shape
    guide = fit.pixel_unet(cfg, width=cfg.guide_unet_width)  # autoguidance's guide: the same U-Net, narrower
    assert guide(x_t, t).shape == x_t.shape and guide.num_parameters < fit.pixel_unet(cfg).num_parameters
    z_t = torch.randn(2, cfg.latent_channels, cfg.image_size // 4, cfg.image_size // 4)
    assert fit.latent_unet(cfg)(z_t, t).shape == z_t.shape


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="linear, cosine"):
        fit.glyph_schedule(tiny_config(schedule="sigmoid"))


@pytest.mark.parametrize("name", ["diff.ddpm_glyphs", "diff.ddim_speed", "diff.cfg_glyphs", "diff.autoguided_glyphs",
                                  "diff.latent_glyphs"])
def test_diffusion_bench_entries_run_and_report_their_details(name, monkeypatch):
    monkeypatch.setattr(bench.config, "SETTINGS", {**bench.config.SETTINGS, "05_diffusion": {"smoke": TINY},
                                                   "06_guided_latent_diffusion": {"smoke": TINY}})
    result = bench.run_entry(name, profile="smoke")
    assert result.name == name and isinstance(result.value, float)
    expected = {"diff.ddpm_glyphs": {"fcd", "fcd_held_out_real", "coverage", "train_s", "sample_s"},
                "diff.ddim_speed": {"fcd_ratio", "ddpm_s", "ddim_s", "fcd_ddim_eta0", "fcd_ddim_eta1"},
                "diff.cfg_glyphs": {"label_accuracy_w0", "w=1 label_accuracy", "w=0 fcd"},
                "diff.autoguided_glyphs": {"precision_alone", "fcd", "fcd_alone", "train_s", "guide_train_s",
                                           "w=0 precision", "w=1 fcd"},
                "diff.latent_glyphs": {"step_speedup", "pixel_step_s", "latent_step_s", "chapter05_pixel_step_s",
                                       "fcd"}}[name]
    assert expected <= set(result.details)


def test_warmup_cosine_rises_then_decays_to_zero():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = fit.warmup_cosine(optimizer, steps=100, warmup_fraction=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[55] == pytest.approx(0.5, abs=0.02) and rates[-1] < 1e-3
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
