"""Chapter 10's recipe: profiles, the data protocol, every experiment end to end with tiny generators, and errors."""

import pytest
import torch

from cvcourse import config
from cvcourse.forensics import labelled
from cvcourse.recipes import ch10_edits
from cvcourse.recipes import ch10_generated_image_detection as ch10

TINY_DDPM = dict(train_size=64, schedule="linear", timesteps=50, width=4, attention=False, batch_size=8, steps=3,
                 snapshot_every=100)
TINY = dict(gan=dict(train_size=64, latent_dim=8, width=4, batch_size=8, steps=3),
            vae=dict(train_size=64, width=4, batch_size=8, steps=3),
            ddpm=TINY_DDPM, latent=TINY_DDPM, autoencoder=dict(train_size=64, width=4, batch_size=8, steps=3),
            snapshot_count=8, checkpoint_every=2, train_size=12, test_size=8, sample_steps=3, dire_steps=2,
            detector=dict(width=4, steps=3, batch_size=8), edit_train=6, edit_test=4, edit_steps=2,
            localiser=dict(width=4, depth=1, steps=3, batch_size=4), targets={})

pytestmark = pytest.mark.usefixtures("tiny_world")


def tiny_config(**changes) -> config.Config:
    settings = config.with_overrides(config.with_overrides(ch10.Settings(), TINY), changes)
    return config.Config(ch10.CHAPTER, "smoke", torch.device("cpu"), settings)


def test_profiles_share_their_generators_with_the_chapters_that_train_them():
    from cvcourse.recipes import ch03_gan, ch05_diffusion, ch07_latent_diffusion
    for profile in ("smoke", "cpu", "gpu"):
        cfg = ch10.load(profile)
        assert cfg.gan == ch03_gan.load(profile).gan and cfg.ddpm == ch05_diffusion.load(profile).ddpm
        assert cfg.latent == ch07_latent_diffusion.load(profile).latent
        assert cfg.autoencoder == ch07_latent_diffusion.load(profile).autoencoder
    assert set(ch10.load("cpu").targets) == {"dire_cnn_auroc", "shortcut_same_format_auroc", "shortcut_drop",
                                              "edit_pixel_auroc"}


def test_split_and_pair_keep_the_classes_apart():
    cfg = tiny_config()
    images = torch.rand(30, 1, 8, 8)
    train, test = ch10.split(images, cfg)
    assert len(train) == 12 and len(test) == 8 and torch.equal(test[0], images[12])
    batch, labels = labelled(train, test)
    assert labels.tolist() == [0] * 12 + [1] * 8 and torch.equal(batch[12:], test)


def test_unknown_names_are_refused():
    cfg = tiny_config()
    with pytest.raises(ValueError, match="unknown generator 'stylegan'"):
        ch10.generated_images(cfg, "stylegan")
    with pytest.raises(ValueError, match="unknown detector 'lpips'"):
        ch10.detector_scores(cfg, "lpips", None, torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), None, None)
    with pytest.raises(ValueError, match="trained detector"):
        ch10.detector_inputs(cfg, "resnet", torch.rand(2, 1, 8, 8), None)
    with pytest.raises(ValueError, match="knows grey 28x28 glyphs; got images of shape \\(3, 32, 32\\)"):
        ch10.dire(cfg, None, torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="localiser input"):
        ch10_edits.localiser_inputs(cfg, "depth", torch.rand(2, 1, 8, 8), None)


def test_every_experiment_runs_end_to_end_on_tiny_generators():
    cfg = tiny_config()
    sets = ch10.detection_sets(cfg)
    assert set(sets) == {"real", *ch10.GENERATORS}
    for train, test in sets.values():
        assert train.shape == (12, 1, 28, 28) and test.shape == (8, 1, 28, 28)
        assert torch.equal((train * 255).round() / 255, train)  # stored as 8-bit
    ddpm, autoencoder = ch10.reconstruction_models(cfg)
    cross = ch10.cross_generator(cfg, sets, ddpm, autoencoder)
    assert set(cross) == set(ch10.TRAINED_DETECTORS + ch10.TRAINING_FREE)
    for rows in cross.values():
        assert set(rows) == set(ch10.GENERATORS) and all(set(columns) == set(ch10.GENERATORS)
                                                         for columns in rows.values())
        assert all(0 <= result["auroc"] <= 1 and 0 <= result["accuracy"] <= 1
                   for columns in rows.values() for result in columns.values())
    training_free = cross["dire_mean"]
    assert training_free["dcgan"]["vae"]["auroc"] == training_free["ddpm"]["vae"]["auroc"]  # no training: same ranks
    assert ch10.cross_generator(cfg, sets, ddpm, autoencoder) == cross  # cached detectors, deterministic scores
    shortcut = ch10.format_shortcut(cfg, sets)
    assert set(shortcut) == {"ideal", "ddpm"} and set(shortcut["ideal"]) == {
        "same_difference", "both_jpeg", "both_png", "equalised", "equalised_both_jpeg"}
    robust = ch10.robustness(cfg, sets, ddpm, autoencoder)
    assert all(set(by_perturbation) == {"none", "jpeg", "resize", "noise"} for by_perturbation in robust.values())
    assert robust["pixel_cnn"]["none"] == cross["pixel_cnn"]["ddpm"]["ddpm"]["auroc"]
    originals, edited, masks = ch10_edits.edited_images(cfg, ddpm)
    assert edited.shape == originals.shape == (10, 1, 28, 28)
    assert torch.equal(edited[~masks], originals[~masks])  # only the masked region is repainted
    localisation = ch10_edits.localise_edits(cfg, edited, masks, ddpm)
    assert set(localisation) == set(ch10_edits.LOCALISER_INPUTS)
    assert localisation["image"]["probabilities"].shape == (4, 28, 28)
    floors = ch10.headline(cfg, cross, shortcut, localisation)
    ideal = shortcut["ideal"]
    assert floors["shortcut_drop"] == pytest.approx(ideal["same_difference"] - ideal["both_jpeg"])
    seconds = ch10.seconds_per_image(cfg, sets, ddpm, autoencoder, count=4)
    assert set(seconds) == set(ch10.TRAINED_DETECTORS + ch10.TRAINING_FREE) and all(s > 0 for s in seconds.values())


def test_the_pixel_cnn_runs_on_a_real_folder_and_reports_its_shortcuts(tmp_path, monkeypatch):
    from real_formats import write_generated_folder
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    for split in ("train", "test"):
        write_generated_folder(tmp_path / "cifake", layout="CIFAKE", split=split, real=((".jpg", (32, 32)),) * 6,
                               generated=((".png", (32, 32)),) * 6)
    result = ch10.folder_experiment(tiny_config(detector=dict(batch_size=64)))  # more than the folder holds
    assert result["layout"] == "CIFAKE" and result["train_size"] == result["test_size"] == 12
    assert any("JPEG" in warning for warning in result["shortcuts"]["train"])
    assert 0 <= result["auroc"] <= 1 and 0 <= result["accuracy"] <= 1


def test_the_fake_bench_entries_run_tiny():
    from cvcourse import bench
    entries = bench.entries()
    dire = entries["fake.dire_glyphs"].run(tiny_config())
    assert 0 <= dire.value <= 1 and "pixel_cnn dcgan->latent accuracy" in dire.details
    shortcut = entries["fake.format_shortcut"].run(tiny_config())
    assert "shortcut_drop" in shortcut.measured and "ddpm both_jpeg" in shortcut.details
    localisation = entries["fake.inpainting_localisation"].run(tiny_config())
    assert 0 <= localisation.value <= 1 and "image_and_dire iou" in localisation.details
    assert entries["fake.dire_glyphs"].target in ch10.load("cpu").targets
