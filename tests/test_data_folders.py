"""Tests of the dataset folders: where data lives and the message when a dataset is missing."""

from pathlib import Path

import pytest

from cvcourse.data import DatasetNotFoundError, data_root, folders, require_folder

HOW_TO_GET = "download it from https://example.org/flowers.tar and unpack it"


def test_data_root_uses_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"


def test_data_root_prefers_the_checkout_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CVCOURSE_DATA", raising=False)
    monkeypatch.setattr(folders, "__file__", str(tmp_path / "checkout" / "cvcourse" / "data" / "folders.py"))
    (tmp_path / "checkout" / "data").mkdir(parents=True)
    (tmp_path / "checkout" / "data" / "README.md").write_text("datasets")
    assert data_root() == tmp_path / "checkout" / "data"


def test_data_root_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", "  ")  # blank counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(folders, "__file__", str(tmp_path / "site-packages" / "cvcourse" / "data" / "folders.py"))
    assert data_root() == tmp_path / "home" / ".cache" / "cvcourse" / "data"


def test_require_folder_returns_a_complete_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.csv").write_text("id,label\n")
    found = require_folder(str(tmp_path), dataset="flowers", expected=["images", "labels.csv"], how_to_get=HOW_TO_GET)
    assert found == tmp_path and isinstance(found, Path)


def test_missing_folder_message_says_what_how_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("CVCOURSE_DATA", str(tmp_path))
    missing = tmp_path / "flowers"
    with pytest.raises(DatasetNotFoundError) as error:
        require_folder(missing, dataset="flowers", expected=["images"], how_to_get=HOW_TO_GET)
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert message.startswith("Dataset 'flowers' not found: the folder")
    assert f"{missing} does not exist" in message
    assert f"How to get it: {HOW_TO_GET}." in message
    assert f"Where to put it: {missing} so that it contains images." in message
    assert f"Datasets live under {tmp_path}; set the CVCOURSE_DATA environment variable" in message


def test_incomplete_folder_message_names_only_the_missing_entries(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"exists but lacks labels\.csv, splits\. How to get it: download"):
        require_folder(tmp_path, dataset="flowers", expected=["images", "labels.csv", "splits"], how_to_get=HOW_TO_GET)


def test_a_file_in_place_of_the_folder_is_reported(tmp_path):
    (tmp_path / "flowers").write_text("not a folder")
    with pytest.raises(DatasetNotFoundError, match=r"flowers is a file, not a folder\. How to get it"):
        require_folder(tmp_path / "flowers", dataset="flowers", how_to_get=HOW_TO_GET)
