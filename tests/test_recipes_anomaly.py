"""Chapter 09's recipe: profiles, the categories it finds, cached models, every method on every category, the claims
and the anom.* bench entries, made tiny."""

import pytest
import torch

from cvcourse import bench, config
from cvcourse.data.inspection import KINDS
from cvcourse.recipes import ch09_anomaly_detection as ch09

from real_formats import write_mvtec  # isort: skip

TINY = dict(train_size=12, test_size=10, image_size=16, autoencoder=dict(width=4, steps=3, batch_size=8),
            ddpm=dict(image_size=16, train_size=12, schedule="linear", timesteps=50, width=4, batch_size=8, steps=3),
            t_lambda=10, t_lambdas=(5, 20), ddim_steps=10, draws=1, feature_width=4, memory_size=200,
            checkpoint_every=2, targets={})

pytestmark = pytest.mark.usefixtures("tiny_world")


def tiny_config(**changes) -> config.Config:
    settings = config.with_overrides(config.with_overrides(ch09.Settings(), TINY), changes)
    return config.Config(ch09.CHAPTER, "smoke", torch.device("cpu"), settings)


def test_profiles_load_with_floors_on_the_cpu_profile():
    cpu, gpu, smoke = ch09.load("cpu"), ch09.load("gpu"), ch09.load("smoke")
    assert set(cpu.targets) == {"partial_image_auroc", "partial_pixel_auroc"}
    assert cpu.data == "synthetic" and gpu.data == "mvtec" and gpu.features == "resnet18"
    assert smoke.t_lambda in range(smoke.ddpm.timesteps) and all(t < cpu.ddpm.timesteps for t in cpu.t_lambdas)
    assert cpu.t_lambda in cpu.t_lambdas


def test_mvtec_categories_come_from_the_data_folder_or_fall_back_to_the_synthetic_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    cfg = tiny_config(data="mvtec", categories=("grid", "carpet", "metal_nut"))
    assert ch09.categories(cfg) == KINDS
    assert "No MVTec AD category" in capsys.readouterr().out
    write_mvtec(tmp_path / "mvtec_ad")
    assert ch09.categories(cfg) == {"grid": "regular texture", "carpet": "stochastic texture", "metal_nut": "object"}
    train, test = ch09.splits(cfg, "grid")
    assert train.images.shape == (2, 3, 16, 16) and set(test.defects) == {"good", "bent"}
    with pytest.raises(ValueError, match="unknown data"):
        ch09.categories(tiny_config(data="imagenet"))


def test_every_method_runs_on_every_category_and_the_claims_are_checked():
    cfg = tiny_config()
    autoencoder, info = ch09.trained_autoencoder(cfg)
    ddpm, ddpm_info = ch09.trained_ddpm(cfg)
    assert info["steps"] == 3 and ddpm_info["steps"] == 3 and ddpm.num_classes == 3
    results = ch09.run_methods(cfg, autoencoder, ddpm)
    assert set(results) == set(KINDS)
    for methods in results.values():
        assert set(methods) == set(ch09.METHODS)
        for outcome in methods.values():
            assert outcome["maps"].shape == (10, 16, 16)
            assert 0 <= outcome["image_auroc"] <= 1 and 0 <= outcome["pixel_auroc"] <= 1
            assert outcome["seconds_per_image"] > 0
    assert results["carpet"]["feature_memory"]["reconstructions"] is None
    assert results["carpet"]["autoencoder"]["reconstructions"].shape == (10, 3, 16, 16)
    claims = ch09.claims_hold(cfg, results)
    assert set(claims) == {"carpet: partial_diffusion > autoencoder (image_auroc)",
                           "carpet: partial_diffusion > autoencoder (pixel_auroc)",
                           "carpet: feature_memory > autoencoder (pixel_auroc)",
                           "washer: partial_diffusion > feature_memory (image_auroc)",
                           "stripes: all methods within 0.01 (image_auroc)"}
    floors = ch09.headline(cfg, results)
    assert floors["partial_image_auroc"] == min(results[name]["partial_diffusion"]["image_auroc"]
                                                for name in ("stripes", "washer"))
    sweep = ch09.t_lambda_sweep(cfg, ddpm)
    assert set(sweep["washer"]) == {5, 20} and "pixel_auroc" in sweep["washer"][5]
    only = ch09.run_methods(cfg, None, ddpm, methods=("partial_diffusion",))
    assert set(only["washer"]) == {"partial_diffusion"}
    assert only["washer"]["partial_diffusion"]["image_auroc"] == results["washer"]["partial_diffusion"]["image_auroc"]
    with pytest.raises(ValueError, match="unknown methods"):
        ch09.run_methods(cfg, None, ddpm, methods=("oracle",))
    comparison = ch09.noise_comparison(cfg, ddpm, sweep)
    assert set(comparison["carpet"]) == {"gaussian", "pyramid"}
    assert comparison["carpet"]["gaussian"]["image_auroc"] == results["carpet"]["partial_diffusion"]["image_auroc"]
    reused = ch09.noise_comparison(cfg, ddpm, {name: {cfg.t_lambda: {"image_auroc": -1.0}} for name in sweep})
    assert reused["carpet"]["gaussian"] == {"image_auroc": -1.0}, "the sweep's figures at t_lambda are reused"
    assert reused["carpet"]["pyramid"] == comparison["carpet"]["pyramid"]


def test_the_feature_choice_is_checked_and_resnet_falls_back_to_random_features(monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown features"):
        ch09.feature_extractor(tiny_config(features="vgg"))

    def offline(*args, **kwargs):
        raise OSError("no internet")

    monkeypatch.setattr(ch09, "resnet_features", offline)
    extractor = ch09.feature_extractor(tiny_config(features="resnet18"))
    assert "random features instead" in capsys.readouterr().out
    assert extractor(torch.rand(1, 3, 16, 16)).shape == (1, 8, 8, 8)


def test_the_anom_entries_run_and_report(monkeypatch):
    monkeypatch.setattr(ch09, "load", lambda profile=None, device=None: tiny_config())
    entries = bench.entries()
    partial = entries["anom.partial_diffusion"].run(tiny_config())
    assert 0 <= partial.value <= 1 and "partial_pixel_auroc" in partial.measured
    assert "carpet t=20 image_auroc" in partial.details and "washer noise=pyramid pixel_auroc" in partial.details
    baselines = entries["anom.baselines"].run(tiny_config())
    assert not baselines.checks and len([key for key in baselines.details if key.startswith("claim ")]) == 5
    assert "washer feature_memory pro" in baselines.details
    monkeypatch.setattr(ch09, "CLAIMS_CHECKED", ("smoke",))
    assert len(entries["anom.baselines"].run(tiny_config()).checks) == 5
