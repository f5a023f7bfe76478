"""Chapters 05, 06 and 07's recipes: diffusion models trained on glyphs through the cache, cached samples, step timing,
and the diff.* bench entries, made tiny."""

import dataclasses

import pytest
import torch

from cvcourse import bench, config
from cvcourse.diffusion import NoiseSchedule, ddim_sample, ddpm_sample, to_image_range
from cvcourse.models import DiffusionUNet, KLAutoencoder
from cvcourse.recipes import ch05_diffusion as ch05
from cvcourse.recipes import ch06_guided_diffusion as ch06
from cvcourse.recipes import ch07_latent_diffusion as ch07
from cvcourse.train import Trainer

TINY_DDPM = dict(train_size=64, schedule="linear", timesteps=20, width=4, batch_size=16, steps=4, lr=1e-3,
                 ema_decay=0.9, snapshot_every=2)
COMMON = dict(sample_count=12, checkpoint_every=2, snapshot_count=6, ddim_steps=5, speed_count=2, targets={})
TINY = {
    ch05: dict(ddpm=TINY_DDPM, ddim_table_steps=(2, 5), inversion_count=4, **COMMON),
    ch06: dict(ddpm=TINY_DDPM, guidance_scales=(0.0, 1.0), guidance_scale=1.0,
               guide={**TINY_DDPM, "width": 2, "steps": 2, "ema_decay": 0.5}, autoguidance_scales=(0.0, 1.0),
               **{key: value for key, value in COMMON.items() if key != "speed_count"}),
    ch07: dict(ddpm=TINY_DDPM, autoencoder=dict(train_size=64, width=4, batch_size=16, steps=3),
               latent={**TINY_DDPM, "schedule": "linear", "width": 8, "depth": 1, "patch_size": 1}, **COMMON),
}

pytestmark = pytest.mark.usefixtures("tiny_world")


def tiny_config(recipe=ch05, **changes) -> config.Config:
    settings = config.with_overrides(config.with_overrides(recipe.Settings(), TINY[recipe]), changes)
    return config.Config(recipe.CHAPTER, "smoke", torch.device("cpu"), settings)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_ddpm_trains_once_keeps_the_ema_weights_and_snapshots(capsys):
    cfg = tiny_config()
    model, info = ch05.trained_ddpm(cfg, cfg.ddpm)
    assert isinstance(model, DiffusionUNet) and not model.training and model.num_classes is None
    assert info["steps"] == 4 and info["snapshot_steps"] == [2, 4]
    assert info["galleries"].shape == (2, 6, 1, 28, 28)  # snapshot_count < GALLERY_SIZE: all of them
    assert info["history"].series("fcd")[0] == [2, 4] and "loss" in info["history"].names()
    assert "building glyph-ddpm" in capsys.readouterr().out
    again, again_info = ch05.trained_ddpm(cfg, cfg.ddpm)
    assert "building" not in capsys.readouterr().out and same_weights(model, again)
    assert torch.equal(again_info["galleries"], info["galleries"])
    raw, _ = ch05.trained_ddpm(cfg, dataclasses.replace(cfg.ddpm, ema_decay=0.5))  # another recipe, another model
    assert not same_weights(model, raw) and "building glyph-ddpm" in capsys.readouterr().out
    unweighted, _ = ch05.trained_ddpm(cfg, dataclasses.replace(cfg.ddpm, min_snr_gamma=None))  # plain L_simple
    assert "building glyph-ddpm" in capsys.readouterr().out and not same_weights(model, unweighted)


@pytest.mark.parametrize("chapter", [ch06, ch07], ids=["ch06", "ch07"])
def test_chapters_06_and_07_load_chapter_05s_model_and_declare_the_same_one_in_every_profile(chapter, capsys):
    model, _ = ch05.trained_ddpm(tiny_config(), tiny_config().ddpm)
    capsys.readouterr()
    same, _ = ch05.trained_ddpm(tiny_config(chapter), tiny_config(chapter).ddpm)
    assert "building" not in capsys.readouterr().out and same_weights(model, same)
    for profile in config.PROFILES:
        assert ch05.load(profile, device="cpu").ddpm == chapter.load(profile, device="cpu").ddpm


def test_the_guide_is_a_narrower_shorter_trained_version_of_the_model(capsys):
    cfg = tiny_config(ch06)
    model, _ = ch05.trained_ddpm(cfg, cfg.ddpm)
    capsys.readouterr()
    guide, info = ch05.trained_ddpm(cfg, cfg.guide)
    assert "building glyph-ddpm" in capsys.readouterr().out and not guide.training
    assert info["steps"] == cfg.guide.steps == 2 and info["snapshot_steps"] == [2]
    assert [name for name, _ in guide.named_parameters()] == [name for name, _ in model.named_parameters()]
    assert guide.num_parameters < model.num_parameters and guide.patch_size == model.patch_size
    assert guide.unet.head.in_channels == cfg.guide.width < model.unet.head.in_channels == cfg.ddpm.width
    for profile in config.PROFILES:  # in every profile: narrower, shorter, the rest of the recipe the model's
        full = ch06.load(profile, device="cpu")
        assert full.guide.width < full.ddpm.width and full.guide.steps < full.ddpm.steps
        assert dataclasses.replace(full.guide, width=full.ddpm.width, steps=full.ddpm.steps,
                                   ema_decay=full.ddpm.ema_decay) == full.ddpm


def test_the_cached_weights_are_the_ema_of_the_training_weights(monkeypatch):
    trained = {}
    original = ch05.keep_ema

    def spy(model, trainer):
        trained["raw"] = {name: value.clone() for name, value in model.state_dict().items()}
        trained["ema"] = trainer.ema.module.state_dict()
        original(model, trainer)

    monkeypatch.setattr(ch05, "keep_ema", spy)
    cfg = tiny_config()
    model, _ = ch05.trained_ddpm(cfg, cfg.ddpm)
    assert all(torch.equal(value, trained["ema"][name]) for name, value in model.state_dict().items())
    assert not all(torch.equal(value, trained["raw"][name]) for name, value in model.state_dict().items())


def test_conditional_model_learns_with_the_null_label():
    cfg = tiny_config(ch06)
    model, info = ch05.trained_ddpm(cfg, cfg.ddpm, conditional=True, drop_label_prob=cfg.drop_label_prob)
    assert model.num_classes == 10 and model.label_embedding.num_embeddings == 11
    assert info["galleries"].shape[1] == 6


def test_an_interrupted_training_is_not_cached_and_resumes(monkeypatch):
    original = Trainer.fit

    def stop_early(self, loader, *, steps=None, epochs=None, resume=False):
        return original(self, loader, steps=steps - 1, resume=resume)

    cfg = tiny_config()
    monkeypatch.setattr(Trainer, "fit", stop_early)
    with pytest.raises(KeyboardInterrupt, match="resume"):
        ch05.trained_ddpm(cfg, cfg.ddpm)
    monkeypatch.setattr(Trainer, "fit", original)
    model, info = ch05.trained_ddpm(cfg, cfg.ddpm)
    assert info["steps"] == 4
    assert "fcd" in info["history"].names()


def test_latent_diffusion_trains_on_scaled_latents_of_a_cached_autoencoder(capsys):
    cfg = tiny_config(ch07)
    model, space, info = ch07.trained_latent_ddpm(cfg)
    assert isinstance(space.autoencoder, KLAutoencoder) and model.in_channels == 4
    assert space.latent_shape(3) == (3, 4, 7, 7) and space.scale_factor > 0
    assert info["steps"] == 4 and info["galleries"].shape == (2, 6, 1, 28, 28)
    out = capsys.readouterr().out
    assert "building glyph-autoencoder" in out and "building glyph-latent-ddpm" in out
    again, again_space, _ = ch07.trained_latent_ddpm(cfg)
    assert "building" not in capsys.readouterr().out and same_weights(model, again)
    assert again_space.scale_factor == space.scale_factor
    images = again_space.decode(ddim_sample(again, ch05.noise_schedule(cfg.latent), again_space.latent_shape(2),
                                            steps=3, clip_x0=False))
    assert images.shape == (2, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    faster, _, _ = ch07.trained_latent_ddpm(tiny_config(ch07, latent=dict(lr=1e-2)))  # only the second stage retrains
    out = capsys.readouterr().out
    assert "building glyph-latent-ddpm" in out and "building glyph-autoencoder" not in out
    assert not same_weights(model, faster)


def test_samples_are_cached_per_model_and_sampler_setting(capsys):
    torch.manual_seed(0)
    model, schedule = DiffusionUNet(1, base_width=4, depth=1).eval(), NoiseSchedule.linear(10)
    images, seconds = ch05.cached_samples(model, schedule, (3, 1, 8, 8), seed=5)
    expected = to_image_range(ddpm_sample(model, schedule, (3, 1, 8, 8), generator=torch.Generator().manual_seed(5)))
    torch.testing.assert_close(images, expected)
    assert seconds > 0 and "building glyph-samples" in capsys.readouterr().out
    again, again_seconds = ch05.cached_samples(model, schedule, (3, 1, 8, 8), seed=5)
    assert torch.equal(again, images) and again_seconds == seconds and "building" not in capsys.readouterr().out
    ddim, _ = ch05.cached_samples(model, schedule, (3, 1, 8, 8), sampler="ddim", steps=4, seed=5)
    expected = to_image_range(ddim_sample(model, schedule, (3, 1, 8, 8), steps=4,
                                          generator=torch.Generator().manual_seed(5)))
    torch.testing.assert_close(ddim, expected)
    with torch.no_grad():
        model.unet.head.bias.fill_(0.1)  # a changed model samples afresh
    changed, _ = ch05.cached_samples(model, schedule, (3, 1, 8, 8), seed=5)
    assert "building" in capsys.readouterr().out and not torch.equal(changed, images)
    with pytest.raises(ValueError, match="'ddpm' or 'ddim'"):
        ch05.cached_samples(model, schedule, (3, 1, 8, 8), sampler="euler")


def test_latent_step_times_compare_one_u_net_on_latents_and_on_pixels():
    cfg = tiny_config(ch07)
    latent_model, space, _ = ch07.trained_latent_ddpm(cfg)
    twin = ch07.latent_unet(cfg, in_channels=1)
    # the same U-Net: only the first and last convolutions see the number of input channels
    assert [name for name, _ in twin.named_parameters()] == [name for name, _ in latent_model.named_parameters()]
    assert twin.patch_size == latent_model.patch_size == 1 and ch05.ddpm_unet(cfg.ddpm).patch_size == 2
    before = [value.clone() for value in latent_model.state_dict().values()]
    times = ch07.latent_step_times(cfg, latent_model, space, torch.rand(8, 1, 28, 28))
    assert set(times) == {"latent", "pixel", "chapter05_pixel", "speedup"} and min(times.values()) > 0
    assert times["speedup"] == pytest.approx(times["pixel"] / times["latent"])
    assert all(torch.equal(a, b) for a, b in zip(before, latent_model.state_dict().values()))


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_every_profile_builds_its_pixel_guide_and_latent_u_nets(profile):
    cfg, latent_cfg = ch06.load(profile, device="cpu"), ch07.load(profile, device="cpu")
    size = cfg.ddpm.image_size
    x_t, t = torch.randn(2, 1, size, size), torch.tensor([0, cfg.ddpm.timesteps - 1])
    assert ch05.ddpm_unet(cfg.ddpm, num_classes=10)(x_t, t, torch.tensor([3, 10])).shape == x_t.shape
    guide = ch05.ddpm_unet(cfg.guide)  # autoguidance's guide: the same U-Net, narrower
    assert guide(x_t, t).shape == x_t.shape and guide.num_parameters < ch05.ddpm_unet(cfg.ddpm).num_parameters
    z_t = torch.randn(2, latent_cfg.autoencoder.latent_channels, size // 4, size // 4)
    assert ch07.latent_unet(latent_cfg)(z_t, t).shape == z_t.shape


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="linear, cosine"):
        ch05.noise_schedule(dataclasses.replace(tiny_config().ddpm, schedule="sigmoid"))


@pytest.mark.parametrize("name", ["diff.ddpm_glyphs", "diff.ddim_speed", "diff.cfg_glyphs", "diff.autoguided_glyphs",
                                  "diff.latent_glyphs"])
def test_diffusion_bench_entries_run_and_report_their_details(name, monkeypatch):
    for recipe, tiny in TINY.items():
        monkeypatch.setattr(recipe, "OVERRIDES", {**recipe.OVERRIDES, "smoke": tiny})
    result = bench.run_entry(name, profile="smoke")
    assert result.name == name and isinstance(result.value, float)
    expected = {"diff.ddpm_glyphs": {"fcd", "fcd_held_out_real", "ddpm_class_coverage", "train_s", "sample_s"},
                "diff.ddim_speed": {"ddim_fcd_ratio", "ddpm_s", "ddim_s", "fcd_ddim_eta0", "fcd_ddim_eta1"},
                "diff.cfg_glyphs": {"label_accuracy_w0", "w=1 label_accuracy", "w=0 fcd"},
                "diff.autoguided_glyphs": {"confident_share_alone", "fcd", "fcd_alone", "autoguidance_train_s",
                                           "guide_train_s", "w=0 confident_share", "w=1 fcd"},
                "diff.latent_glyphs": {"latent_step_speedup", "pixel_step_s", "latent_step_s",
                                       "chapter05_pixel_step_s", "fcd"}}[name]
    assert expected <= set(result.details)
