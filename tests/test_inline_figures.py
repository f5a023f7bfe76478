"""The figures a student sees: one chapter executed as Jupyter runs it, with matplotlib's inline backend (the test
suite runs notebooks with the Agg backend, which renders nothing into the notebook)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

CHAPTER = Path(__file__).parents[1] / "chapters" / "01_segmentation_basics.ipynb"


@pytest.mark.timeout(600)
def test_a_chapters_figures_come_out_as_images(monkeypatch, tmp_path):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel then uses ipykernel's default, the inline backend
    monkeypatch.setenv("CVCOURSE_PROFILE", "smoke")
    nb = nbformat.read(CHAPTER, as_version=4)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert not [output for output in outputs if output.output_type == "error"]
    assert len(images) >= 5, f"only {len(images)} figures were rendered as images"
    assert all(len(output["data"]["image/png"]) > 1000 for output in images)  # real pictures, base64 PNGs
