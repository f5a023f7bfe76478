"""The gpu profile, which Colab picks by itself, executed on this machine: every chapter top to bottom with the gpu
profile's models, batch sizes, image sizes and data paths, each training and sampling budget capped
(``CVCOURSE_CHECK_CAP``) and the real datasets replaced by tiny files in their own on-disk formats. It catches what a
real gpu run would hit first: shape errors at the larger sizes, dataset code paths, settings that do not exist, a
dataset smaller than its batch. The chapters' check cells (tagged "check") are left out: capped runs reach no target.

Run it with ``make test-gpu-profile``; ``make test`` skips it (it takes several minutes).
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from real_formats import write_every_format  # isort: skip

CHAPTERS = sorted((Path(__file__).parents[1] / "chapters").glob("[0-9][0-9]_*.ipynb"))
CAP = 3

pytestmark = pytest.mark.skipif(not os.environ.get("CVCOURSE_GPU_PROFILE_CHECK"),
                                reason="the gpu-profile check runs with `make test-gpu-profile`")


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """A data folder holding every real dataset's format and a cache shared by the chapters (04 loads 03's GAN)."""
    data = write_every_format(tmp_path_factory.mktemp("data"))
    return {"CVCOURSE_PROFILE": "gpu", "CVCOURSE_DEVICE": "cpu", "CVCOURSE_CHECK_CAP": str(CAP),
            "CVCOURSE_DATA": str(data), "CVCOURSE_CACHE": str(tmp_path_factory.mktemp("cache")), "MPLBACKEND": "Agg"}


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_the_chapter_runs_in_the_gpu_profile(path, environment, tmp_path, monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    nb = nbformat.read(path, as_version=4)
    nb.cells = [cell for cell in nb.cells if "check" not in cell.metadata.get("tags", [])]
    NotebookClient(nb, timeout=1800, resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                    for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs)
    assert "profile" in shown and "gpu  (set CVCOURSE_PROFILE" in shown  # the settings shown are the gpu profile's
