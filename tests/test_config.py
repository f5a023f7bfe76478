"""Profiles, the one switch for size, and the typed settings and targets of every chapter's recipe."""

import dataclasses
import importlib
import pkgutil

import pytest
import torch

from cvcourse import config, recipes


def chapter_recipes():
    """Every chapter's recipe module (``chNN_...``)."""
    return [importlib.import_module(f"cvcourse.recipes.{info.name}") for info in pkgutil.iter_modules(recipes.__path__)
            if info.name.startswith("ch")]


def test_env_var_chooses_the_profile(monkeypatch):
    monkeypatch.setenv("CVCOURSE_PROFILE", "smoke")
    assert config.resolve_profile() == "smoke"
    monkeypatch.setenv("CVCOURSE_PROFILE", " GPU ")
    assert config.resolve_profile() == "gpu"


def test_argument_beats_env_var(monkeypatch):
    monkeypatch.setenv("CVCOURSE_PROFILE", "smoke")
    assert config.resolve_profile("cpu") == "cpu"


@pytest.mark.parametrize("cuda, expected", [(True, "gpu"), (False, "cpu")])
def test_unset_profile_follows_the_hardware(monkeypatch, cuda, expected):
    monkeypatch.delenv("CVCOURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert config.resolve_profile() == expected


def test_unknown_profile_lists_the_valid_names(monkeypatch):
    monkeypatch.setenv("CVCOURSE_PROFILE", "tiny")
    with pytest.raises(ValueError, match=r"Unknown profile 'tiny'\. Valid profiles: smoke, cpu, gpu"):
        chapter_recipes()[0].load()


@pytest.mark.parametrize("recipe", chapter_recipes(), ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_every_recipe_loads_in_every_profile_with_targets_that_parse(recipe):
    assert set(recipe.OVERRIDES) <= {"smoke", "gpu"}  # cpu is the dataclass's defaults
    assert dataclasses.is_dataclass(recipe.Settings) and recipe.Settings.__dataclass_params__.frozen
    for profile in config.PROFILES:
        cfg = recipe.load(profile, device="cpu")
        assert cfg.profile == profile and cfg.chapter == recipe.CHAPTER
        assert all(isinstance(target, config.Target) for target in cfg.targets.values())
        for name, target in cfg.targets.items():  # no target that cannot fail, such as ">= 0" for a score
            assert (target.comparison, target.threshold) != (">=", 0.0), (recipe.CHAPTER, profile, name)


@pytest.mark.parametrize("recipe", chapter_recipes(), ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_profiles_grow_from_smoke_to_gpu(recipe):
    def sizes(settings, prefix=""):
        found = {}
        for item in dataclasses.fields(settings):
            value = getattr(settings, item.name)
            if dataclasses.is_dataclass(value):
                found.update(sizes(value, f"{prefix}{item.name}."))
            elif item.name.endswith(("train_size", "steps", "_train")) and isinstance(value, int):
                found[prefix + item.name] = value
        return found

    smoke, cpu, gpu = (sizes(recipe.load(profile, device="cpu").settings) for profile in config.PROFILES)
    for name in cpu:
        assert smoke[name] <= cpu[name] <= gpu[name], (recipe.CHAPTER, name)


def test_overrides_change_nested_fields_and_refuse_unknown_ones():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        width: int = 4
        depth: int = 2

    @dataclasses.dataclass(frozen=True)
    class Settings(config.Settings):
        inner: Inner = Inner()
        steps: int = 10

    changed = config.with_overrides(Settings(), {"inner": {"width": 8}, "steps": 3, "targets": {"score": ">= 1"}})
    assert changed == Settings(inner=Inner(width=8), steps=3, targets={"score": ">= 1"})
    with pytest.raises(KeyError, match="has no setting 'epochs'; it has: inner, steps, targets"):
        config.with_overrides(Settings(), {"epochs": 3})
    with pytest.raises(KeyError, match="Inner has no setting 'heads'"):
        config.with_overrides(Settings(), {"inner": {"heads": 3}})
    with pytest.raises(ValueError, match="A target reads like"):
        Settings(targets={"score": "high"})
    assert config.settings_key(changed) == {"inner": {"width": 8, "depth": 2}, "steps": 3}


def test_config_reads_settings_as_attributes_shows_them_and_checks_targets(capsys):
    cfg = chapter_recipes()[0].load("smoke", device="cpu")
    assert cfg.profile == "smoke" and cfg.device == torch.device("cpu")
    assert cfg.batch_size == cfg.settings.batch_size
    shown = repr(cfg)
    assert "profile" in shown and "smoke" in shown and "batch_size" in shown and "targets" in shown
    with pytest.raises(AttributeError, match="has no setting 'epochs'"):
        cfg.epochs
    target = cfg.targets["accuracy"]
    assert cfg.check("accuracy", target.threshold + 0.01) is True
    with pytest.raises(AssertionError, match=r"accuracy = 0\.1 misses its target >= 0\.7 in the smoke profile"):
        cfg.check("accuracy", 0.1)
    assert cfg.check("nothing_measured", 0.5) is False
    assert "nothing_measured = 0.5: no target in the smoke profile, not checked" in capsys.readouterr().out


@pytest.mark.parametrize("text, value, met", [(">= 0.9", 0.9, True), (">= 0.9", 0.89, False), ("<= 600", 601, False),
                                              ("< 0.95", 0.95, False), ("> 3", 3.5, True)])
def test_targets_compare_like_they_read(text, value, met):
    target = config.Target.parse(text)
    assert target.met_by(value) is met and config.Target.parse(str(target)) == target


@pytest.mark.parametrize("text", ["0.9", ">= x", "== 1"])
def test_malformed_targets_are_rejected(text):
    with pytest.raises(ValueError, match="A target reads like"):
        config.Target.parse(text)


def test_the_check_cap_shrinks_budgets_keeps_models_and_batches_and_checks_nothing(monkeypatch, capsys):
    from cvcourse.recipes import ch05_diffusion

    full = ch05_diffusion.load("gpu", device="cpu")
    monkeypatch.setenv("CVCOURSE_CHECK_CAP", "3")
    cfg = ch05_diffusion.load("gpu", device="cpu")
    assert cfg.cap == 3 and cfg.ddpm.steps == 3 and cfg.ddpm.snapshot_every == 3 and cfg.checkpoint_every == 3
    assert cfg.sample_count == cfg.speed_count == 100 and cfg.ddpm.train_size == 2 * cfg.ddpm.batch_size
    assert cfg.ddpm.timesteps == full.ddpm.timesteps == 1000  # the schedule is the model's, not a budget
    assert (cfg.ddpm.width, cfg.ddpm.batch_size, cfg.ddpm.image_size) == (full.ddpm.width, full.ddpm.batch_size, 28)
    assert cfg.check("ddpm_confident_share", 0.0) is False and "not checked" in capsys.readouterr().out
    assert "capped" in repr(cfg)
    monkeypatch.setenv("CVCOURSE_CHECK_CAP", "three")
    with pytest.raises(ValueError, match="CVCOURSE_CHECK_CAP must be a positive integer"):
        ch05_diffusion.load("gpu", device="cpu")
