"""Student copies: solution cells become stubs, everything else stays."""

import json
from pathlib import Path

import nbformat
import pytest
import torch

from cvcourse import exercises, student
from cvcourse.exercises import ExerciseFailed

SOLUTION = '''\
import torch


@torch.no_grad()
def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Boxes (N, 4) XYXY around masks (N, H, W)."""
    rows = masks.any(dim=2)
    return rows.float()


def helper(
    x: int,
    y: int = 2,
) -> int:
    # add them up
    return x + y


threshold = 0.5
low, high = 0, 1
count: int = 3
print(threshold)
for i in range(3):
    print(i)'''

STUB = '''\
import torch

@torch.no_grad()
def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Boxes (N, 4) XYXY around masks (N, H, W)."""
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: write boxes_from_masks")

def helper(
    x: int,
    y: int = 2,
) -> int:
    # add them up
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: write helper")

threshold = None  # YOUR CODE HERE

low, high = None, None  # YOUR CODE HERE

count: int = None  # YOUR CODE HERE

# YOUR CODE HERE'''


def test_student_stub_keeps_signatures_and_docstrings_and_drops_the_solution():
    assert student.student_stub(SOLUTION) == STUB


def test_student_stub_explains_cells_it_cannot_convert():
    with pytest.raises(ValueError, match=r"not plain Python.*magics"):
        student.student_stub("%matplotlib inline\nx = 1")
    with pytest.raises(ValueError, match=r"body of f\(\) starts on its signature line"):
        student.student_stub("def f(x): return x")


def write_notebook(path, solution_source: str = SOLUTION):
    nb = nbformat.v4.new_notebook()
    intro = nbformat.v4.new_markdown_cell("# Boxes from masks")
    setup = nbformat.v4.new_code_cell("import torch\nfrom cvcourse import exercises", execution_count=1)
    setup.outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    solution = nbformat.v4.new_code_cell(solution_source, metadata={"tags": ["solution"]}, execution_count=2)
    check = nbformat.v4.new_code_cell('exercises.check("boxes_from_masks", boxes_from_masks)')
    nb.cells = [intro, setup, solution, check]
    nbformat.write(nb, path)
    return nb


def test_make_student_copy_stubs_solutions_and_strips_outputs(tmp_path):
    original = write_notebook(tmp_path / "chapter.ipynb")
    copy_path = tmp_path / "student" / "chapter.ipynb"
    assert student.make_student_copy(tmp_path / "chapter.ipynb", copy_path) == 1
    copy = nbformat.read(copy_path, as_version=4)
    assert "Student copy" in copy.cells.pop(1).source  # the note under the title
    assert copy.cells[2].source == STUB
    assert "rows = masks.any" not in json.dumps(copy)
    assert [cell.source for i, cell in enumerate(copy.cells) if i != 2] == [
        cell.source for i, cell in enumerate(original.cells) if i != 2
    ]
    code_cells = [cell for cell in copy.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code_cells)
    assert nbformat.read(tmp_path / "chapter.ipynb", as_version=4).cells[2].source == SOLUTION  # untouched


def test_running_the_student_stub_raises_not_implemented(tmp_path):
    write_notebook(tmp_path / "chapter.ipynb")
    student.make_student_copy(tmp_path / "chapter.ipynb", tmp_path / "copy.ipynb")
    namespace = {}
    exec(nbformat.read(tmp_path / "copy.ipynb", as_version=4).cells[3].source, namespace)  # after the note
    with pytest.raises(NotImplementedError, match="Exercise: write boxes_from_masks"):
        namespace["boxes_from_masks"](torch.zeros(1, 2, 2, dtype=torch.bool))
    with pytest.raises(ExerciseFailed, match="not done yet"):
        exercises.check("boxes_from_masks", namespace["boxes_from_masks"])


def test_make_student_copy_names_the_cell_it_cannot_convert(tmp_path):
    write_notebook(tmp_path / "chapter.ipynb", solution_source="!pip install torch")
    with pytest.raises(ValueError, match=r"chapter.ipynb, solution cell 3: the cell is not plain Python"):
        student.make_student_copy(tmp_path / "chapter.ipynb", tmp_path / "copy.ipynb")


def test_student_command_converts_every_notebook(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    write_notebook(tmp_path / "src" / "00_a.ipynb")
    write_notebook(tmp_path / "src" / "01_b.ipynb")
    assert student.main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    assert sorted(path.name for path in (tmp_path / "dst").iterdir()) == ["00_a.ipynb", "01_b.ipynb"]
    assert "1 exercise(s) turned into stubs" in capsys.readouterr().out


def test_student_command_refuses_to_overwrite_the_solutions(tmp_path, capsys):
    with pytest.raises(SystemExit):
        student.main([str(tmp_path), str(tmp_path)])
    assert "solutions would be lost" in capsys.readouterr().err


def test_committed_student_copies_are_current(tmp_path):
    """chapters/student/ holds what `make student` writes now: rerun it after changing a chapter."""
    chapters = Path(__file__).parents[1] / "chapters"
    for src in sorted(chapters.glob("*.ipynb")):
        fresh = tmp_path / src.name
        student.make_student_copy(src, fresh)
        committed = chapters / "student" / src.name
        assert committed.is_file(), f"{committed} is missing: run `make student`"
        assert committed.read_text() == fresh.read_text(), f"{committed} is out of date: run `make student`"
    assert {path.name for path in (chapters / "student").glob("*.ipynb")} == {p.name for p in chapters.glob("*.ipynb")}


def test_the_student_copy_says_what_it_is_and_where_the_solutions_are(tmp_path):
    src = Path(__file__).parents[1] / "chapters" / "02_unet.ipynb"
    student.make_student_copy(src, tmp_path / "copy.ipynb")
    note = nbformat.read(tmp_path / "copy.ipynb", as_version=4).cells[1]
    assert note.cell_type == "markdown" and "Student copy" in note.source and "(../02_unet.ipynb)" in note.source
