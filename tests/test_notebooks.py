import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import cvcourse
from cvcourse import notebooks
from cvcourse.student import SOLUTION_TAG

CHAPTERS = Path(__file__).parents[1] / "chapters"
COMMITTED = sorted(CHAPTERS.glob("*.ipynb"))


def run_notebook_outputs() -> nbformat.NotebookNode:
    """A notebook as Jupyter saves it after a run: outputs, counts, timing and widget state."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = nbformat.v4.new_code_cell("print(1)", execution_count=4)
    code.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    code.metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
    code.metadata["tags"] = ["solution"]
    quiet = nbformat.v4.new_code_cell("x = 1", execution_count=5)
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), code, quiet]
    return nb


def test_problems_lists_everything_that_is_not_clean():
    assert notebooks.problems(run_notebook_outputs()) == [
        "cell 2 has outputs",
        "cell 2 has execution count 4",
        "cell 2 has execution timing metadata",
        "cell 3 has execution count 5",
        "notebook metadata holds saved widget state",
    ]


def test_strip_outputs_cleans_and_keeps_sources_tags_and_kernelspec():
    nb = run_notebook_outputs()
    assert notebooks.strip_outputs(nb) is nb
    assert notebooks.problems(nb) == []
    assert [cell.source for cell in nb.cells] == ["# Title", "print(1)", "x = 1"]
    assert nb.cells[1].metadata == {"tags": ["solution"]}
    assert nb.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(nb)


def test_check_command_fails_on_unclean_notebooks_and_strip_fixes_them(tmp_path, capsys):
    nbformat.write(run_notebook_outputs(), tmp_path / "dirty.ipynb")
    nbformat.write(notebooks.strip_outputs(run_notebook_outputs()), tmp_path / "clean.ipynb")
    clean_bytes = (tmp_path / "clean.ipynb").read_bytes()

    assert notebooks.main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "dirty.ipynb: cell 2 has outputs" in out and "clean.ipynb" not in out

    assert notebooks.main(["strip", str(tmp_path)]) == 0
    assert "stripped" in capsys.readouterr().out
    assert notebooks.problems(nbformat.read(tmp_path / "dirty.ipynb", as_version=4)) == []
    assert (tmp_path / "clean.ipynb").read_bytes() == clean_bytes  # clean notebooks are not rewritten
    assert notebooks.main(["check", str(tmp_path / "dirty.ipynb"), str(tmp_path / "clean.ipynb")]) == 0
    assert "2 notebook(s) clean" in capsys.readouterr().out


def test_command_line_entry_point_runs_and_rejects_a_missing_path(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cvcourse.notebooks", "check", str(tmp_path / "missing.ipynb")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "missing.ipynb is neither a notebook (.ipynb) nor a folder; check the path" in result.stderr


def test_find_notebooks_skips_checkpoints(tmp_path):
    (tmp_path / ".ipynb_checkpoints").mkdir()
    for name in ["b.ipynb", "a.ipynb", ".ipynb_checkpoints/a-checkpoint.ipynb"]:
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / name)
    assert notebooks.find_notebooks([tmp_path]) == [tmp_path / "a.ipynb", tmp_path / "b.ipynb"]


# The committed chapters


def test_there_are_committed_chapter_notebooks():
    assert COMMITTED, f"no notebooks in {CHAPTERS}"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.name)
def test_committed_notebook_is_clean(path):
    found = notebooks.problems(nbformat.read(path, as_version=4))
    assert found == [], f"{path.name} is not clean: {found}; run: python -m cvcourse.notebooks strip chapters"


def unchecked_solutions(nb: nbformat.NotebookNode) -> list[str]:
    """First lines of the solution cells whose next code cell does not call exercises.check(."""
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    return [
        cell.source.splitlines()[0] if cell.source else "(empty cell)"
        for cell, following in zip(code_cells, code_cells[1:] + [None])
        if SOLUTION_TAG in cell.metadata.get("tags", [])
        and (following is None or "exercises.check(" not in following.source)
    ]


def test_unchecked_solutions_finds_solutions_without_a_check():
    solution = nbformat.v4.new_code_cell("def f():\n    pass", metadata={"tags": [SOLUTION_TAG]})
    check = nbformat.v4.new_code_cell('exercises.check("f", f)')
    other = nbformat.v4.new_code_cell("f()")
    note = nbformat.v4.new_markdown_cell("Now check it:")
    nb = nbformat.v4.new_notebook()
    nb.cells = [solution, note, check, solution, other, check, solution]
    assert unchecked_solutions(nb) == ["def f():", "def f():"]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.name)
def test_every_solution_cell_is_followed_by_a_check(path):
    unchecked = unchecked_solutions(nbformat.read(path, as_version=4))
    assert unchecked == [], f"{path.name}: follow these solution cells with a cell calling exercises.check("


@pytest.mark.parametrize("path", COMMITTED + sorted((CHAPTERS / "student").glob("*.ipynb")), ids=lambda p: p.name)
def test_the_install_cell_pins_this_version_of_the_package(path):
    """On Colab a notebook installs the release it was written with (`python -m cvcourse.notebooks pin chapters`)."""
    assert notebooks.install_specs(nbformat.read(path, as_version=4)) == [notebooks.INSTALL_SPEC]


def test_pin_rewrites_an_install_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('if IN_COLAB:\n    %pip install -q "cvcourse @ git+https://x.org/y@v0.0.1"')]
    assert notebooks.install_specs(notebooks.pin_install(nb)) == [notebooks.INSTALL_SPEC]
    assert notebooks.INSTALL_SPEC.endswith(f"@v{cvcourse.__version__}")


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_the_colab_badges_open_the_student_copy(path):
    badge = f"colab.research.google.com/github/cvcourse/cvcourse/blob/main/chapters/student/{path.name})"
    assert badge in nbformat.read(path, as_version=4).cells[0].source
    assert badge in (CHAPTERS.parent / "README.md").read_text()
    assert (CHAPTERS / "student" / path.name).is_file()


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_each_chapter_has_one_check_cell_tagged_check(path):
    """The last section's cell that asserts the chapter's results carries the tag "check" (the gpu-profile check,
    whose budgets are capped, runs every cell but that one)."""
    cells = [cell for cell in nbformat.read(path, as_version=4).cells if "check" in cell.metadata.get("tags", [])]
    assert len(cells) == 1 and cells[0].cell_type == "code" and "cfg.check(" in cells[0].source


def figure_returning_viz_functions() -> set[str]:
    tree = ast.parse((Path(cvcourse.__file__).parent / "viz.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.returns is not None
            and "Figure" in ast.unparse(node.returns)}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_no_cell_ends_with_a_returned_figure_which_jupyter_would_draw_twice(path):
    """A Figure returned as a cell's value is drawn by its repr and again by the inline backend: end with plt.show()."""
    drawn_twice = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        python = re.sub(r"^(\s*)[%!].*$", r"\1pass", cell.source, flags=re.MULTILINE)  # IPython magics and shell
        body = ast.parse(python).body if cell.cell_type == "code" else []
        last = body[-1] if body else None
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
            called = last.value.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in figure_returning_viz_functions():
                drawn_twice.append(f"cell {index}: {name}")
    assert not drawn_twice, f"{path.name}: end these cells with plt.show(): {drawn_twice}"
