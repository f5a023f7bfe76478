"""Profiles: the one switch for size."""

import pytest
import torch

from cvcourse import config


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
        config.load("00_tour")


def test_every_chapter_declares_every_profile_with_the_same_settings():
    for chapter, profiles in config.SETTINGS.items():
        assert set(profiles) == set(config.PROFILES), chapter
        keys = {profile: set(settings) for profile, settings in profiles.items()}
        assert keys["smoke"] == keys["cpu"] == keys["gpu"], chapter


def test_profiles_grow_from_smoke_to_gpu():
    for chapter, profiles in config.SETTINGS.items():
        for key in ("train_size", "steps"):
            if key in profiles["smoke"]:
                assert profiles["smoke"][key] < profiles["cpu"][key] <= profiles["gpu"][key], (chapter, key)


def test_config_reads_settings_as_attributes_and_shows_them():
    cfg = config.load("00_tour", "smoke", device="cpu")
    assert cfg.profile == "smoke" and cfg.device == torch.device("cpu")
    assert cfg.batch_size == config.SETTINGS["00_tour"]["smoke"]["batch_size"]
    shown = repr(cfg)
    assert "profile" in shown and "smoke" in shown and "batch_size" in shown
    with pytest.raises(AttributeError, match="has no setting 'epochs'"):
        cfg.epochs


def test_unknown_chapter_lists_the_known_ones():
    with pytest.raises(KeyError, match="Known chapters: 00_tour"):
        config.load("99_nothing", "smoke")
