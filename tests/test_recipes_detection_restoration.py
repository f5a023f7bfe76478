"""Chapter 13, part 1 (denoise, then detect), made tiny: the degraded test scenes, the denoisers and the fine-tuned
detector trained for a few steps, the table with every method at every strength, its cache, and a noise level the
direct denoiser never learned."""

import pytest
import torch

from cvcourse import config
from real_formats import write_penn_fudan  # isort: skip
from cvcourse.data import detection_scenes
from cvcourse.recipes import ch08_object_detection as ch08
from cvcourse.recipes import ch13_denoise_then_detect as ch13
from cvcourse.recipes import denoise_then_detect as recipe

TINY = dict(test_size=6, methods=recipe.METHODS, noise_stds=(0.1, 0.4), low_light_gains=(0.2,), read_noise=0.04,
            train_size=8, tuning_size=4, denoiser=dict(crop_size=16, crops_per_scene=2, width=8, batch_size=8),
            diffusion_steps=3, direct_steps=3, purify_steps=2, finetune=dict(steps=4, batch_size=4),
            checkpoint_every=2)
TINY_DETECTOR = dict(image_size=64, train_size=8, width=4, fpn_width=8, steps=4, batch_size=4)

pytestmark = pytest.mark.usefixtures("tiny_world")


def tiny_config(dataset: str = "shapes") -> config.Config:
    settings = config.with_overrides(ch13.Settings(), {"restoration": TINY, "dataset": dataset})
    return config.Config(ch13.CHAPTER, "smoke", torch.device("cpu"), settings)


@pytest.fixture(autouse=True)
def tiny_detector(monkeypatch):
    def settings_for(cfg):
        settings = config.with_overrides(ch08.Settings(), {**TINY_DETECTOR, "dataset": cfg.dataset})
        return config.Config(ch08.CHAPTER, "smoke", torch.device("cpu"), settings)

    monkeypatch.setattr(ch08, "settings_for", settings_for)


def test_every_degradation_keeps_the_test_scenes_and_draws_the_same_noise_each_time():
    cfg = tiny_config()
    assert recipe.degradations(cfg) == [("gaussian", 0.1), ("gaussian", 0.4), ("low_light", 0.2)]
    clean, targets = recipe.clean_test_scenes(cfg)
    assert clean.shape == (6, 3, 64, 64) and len(targets) == 6
    first = detection_scenes("test", 1, 64)[0]
    assert torch.equal(clean[0], first[0].as_subclass(torch.Tensor))
    for kind, strength in recipe.degradations(cfg):
        degraded, same_targets = recipe.degraded_test_scenes(cfg, kind, strength)
        assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(targets, same_targets))
        assert degraded.shape == clean.shape and 0 <= degraded.min() and degraded.max() <= 1
        assert torch.equal(degraded, recipe.degraded_test_scenes(cfg, kind, strength)[0])
    assert recipe.noise_std(cfg, "low_light", 0.2) == pytest.approx(0.2)
    assert recipe.direct_noise_range(cfg) == (0.1, 0.4)
    with pytest.raises(ValueError, match="unknown degradation"):
        recipe.degrade(cfg, "fog", 0.1, clean)


def test_the_direct_denoiser_learns_only_the_timesteps_of_the_degradations():
    cfg = tiny_config()
    window = recipe.direct_schedule(cfg)
    full = recipe.noise_schedule(cfg)
    levels = ((1 - window.alpha_bar) / window.alpha_bar).sqrt()
    assert levels[0] <= 2 * 0.1 and levels[-1] >= 2 * 0.4 and window.T < full.T
    assert levels[1] > 2 * 0.1 and levels[-2] < 2 * 0.4  # the fewest timesteps that cover the range


def test_the_direct_denoiser_refuses_a_noise_level_it_never_learned():
    cfg = tiny_config()
    images = recipe.clean_test_scenes(cfg)[0]
    with pytest.raises(ValueError, match=r"std 0.1 to 0.4 .*noise_stds or low_light_gains.*method='diffusion'"):
        recipe.restore(cfg, "direct", images, "gaussian", 0.5)
    with pytest.raises(ValueError, match="unknown method"):
        recipe.restore(cfg, "wiener", images, "gaussian", 0.1)


def test_the_table_has_every_method_at_every_strength_and_comes_back_from_the_cache(capsys):
    cfg = tiny_config()
    rows = recipe.restoration_table(cfg, progress=False)
    degraded = [row for row in rows if row["kind"] != "clean"]
    assert {(row["kind"], row["method"]) for row in rows if row["kind"] == "clean"} == {
        ("clean", "none"), ("clean", "finetuned")}
    assert sorted((row["kind"], row["strength"], row["method"]) for row in degraded) == sorted(
        (kind, strength, method) for kind, strength in recipe.degradations(cfg) for method in recipe.METHODS)
    for row in rows:
        assert 0 <= row["map"] <= row["map_50"] <= 1 and row["seconds_per_image"] > 0
    assert sorted({round(row["noise_std"], 9) for row in degraded}) == [0.1, 0.2, 0.4]
    capsys.readouterr()
    assert recipe.restoration_table(cfg, progress=False) == rows
    assert "cache: building" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown methods"):
        recipe.restoration_table(config.Config(cfg.chapter, cfg.profile, cfg.device, config.with_overrides(
            cfg.settings, {"restoration": {"methods": ("none", "wiener")}})))


def test_restored_images_stay_images_and_the_filters_are_tuned_on_validation_scenes():
    cfg = tiny_config()
    degraded = recipe.degraded_test_scenes(cfg, "gaussian", 0.4)[0]
    for method in recipe.METHODS:
        restored = recipe.restore(cfg, method, degraded, "gaussian", 0.4)
        assert restored.shape == degraded.shape and 0 <= restored.min() and restored.max() <= 1
    assert recipe.tuned_filter_strength(cfg, "gaussian_filter", "gaussian", 0.4) >= \
        recipe.tuned_filter_strength(cfg, "gaussian_filter", "gaussian", 0.1)
    model, info = recipe.finetuned_detector(cfg, progress=False)
    assert info["steps"] == 4 and not model.training


def test_the_table_runs_on_penn_fudan_photos_as_the_gpu_profile_does(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path / "data"))
    write_penn_fudan(tmp_path / "data", count=20)
    cfg = tiny_config("penn_fudan")
    clean, targets = recipe.clean_test_scenes(cfg)
    assert clean.shape == (6, 3, 64, 64) and all(set(target["labels"].tolist()) == {1} for target in targets)
    assert ch13.class_names(cfg) == ("background", "pedestrian")
    assert ch08.build_detector(ch08.settings_for(cfg)).num_classes == 1
    rows = recipe.restoration_table(cfg, progress=False)
    assert len(rows) == 2 + len(recipe.degradations(cfg)) * len(recipe.METHODS)
    assert all(0 <= row["map"] <= row["map_50"] <= 1 for row in rows)
    assert recipe.restoration_table(tiny_config(), progress=False) != rows  # the shape scenes have their own cache


def test_the_summary_ranks_the_methods_and_leaves_the_recovered_share_undefined_without_a_gap():
    cfg = tiny_config()
    strongest = max(cfg.restoration.noise_stds)

    def rows(clean, none, filtered, finetuned):
        return [{"kind": "clean", "method": "none", "strength": 0.0, "map_50": clean}] + [
            {"kind": "gaussian", "method": method, "strength": strongest, "map_50": value}
            for method, value in (("none", none), ("gaussian_filter", filtered), ("finetuned", finetuned))]

    summary = ch13.restoration_summary(cfg, rows(0.9, 0.5, 0.6, 0.8))
    assert summary["gap"] == pytest.approx(0.4) and summary["best"] == "finetuned"
    assert summary["recovered"] == pytest.approx({"gaussian_filter": 0.25, "finetuned": 0.75})
    assert summary["ranking"] == ["finetuned", "gaussian_filter", "none"]
    untrained = ch13.restoration_summary(cfg, rows(0.0, 0.0, 0.0, 0.1))
    assert untrained["gap"] == 0 and untrained["best"] == "finetuned"
    assert all(share != share for share in untrained["recovered"].values())  # NaN: nothing to recover
