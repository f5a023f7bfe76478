"""Student copies of the chapter notebooks: every ``solution`` cell becomes a stub to fill in.

    python -m cvcourse.student SRC_DIR DST_DIR      (what `make student` runs)

Functions keep their signature and docstring and raise NotImplementedError, so the check cell
after them reports "not done yet" until the student writes the body.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Sequence
from pathlib import Path

import nbformat

from cvcourse.notebooks import find_notebooks, strip_outputs

SOLUTION_TAG = "solution"
YOUR_CODE = "# YOUR CODE HERE"
STUDENT_NOTE = ("**Student copy.** Each exercise's solution is replaced by a stub marked `{marker}`; the cell after it "
                "checks your answer. The solutions are in [the chapter notebook](../{name}).")


def function_stub(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str:
    """The function as written up to its docstring (or its first statement), then a body that raises."""
    if node.body[0].lineno == node.lineno:
        raise ValueError(
            f"the body of {node.name}() starts on its signature line; move it to the lines below"
        )
    first_line = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
    has_docstring = ast.get_docstring(node, clean=False) is not None
    last_line = node.body[0].end_lineno if has_docstring else node.body[0].lineno - 1
    indent = " " * node.body[0].col_offset
    return "\n".join(
        lines[first_line - 1 : last_line]
        + [f"{indent}{YOUR_CODE}", f'{indent}raise NotImplementedError("Exercise: write {node.name}")']
    )


def assignment_stub(node: ast.Assign | ast.AnnAssign, source: str) -> str:
    """``x = ...`` becomes ``x = None  # YOUR CODE HERE`` (``a, b = None, None`` for tuples)."""
    if isinstance(node, ast.AnnAssign):
        target = ast.get_source_segment(source, node.target)
        return f"{target}: {ast.get_source_segment(source, node.annotation)} = None  {YOUR_CODE}"
    last = node.targets[-1]
    value = ", ".join(["None"] * len(last.elts)) if isinstance(last, (ast.Tuple, ast.List)) else "None"
    targets = " = ".join(ast.get_source_segment(source, target) for target in node.targets)
    return f"{targets} = {value}  {YOUR_CODE}"


def student_stub(source: str) -> str:
    """The student version of a solution cell, statement by statement.

    Functions keep signature and docstring and raise NotImplementedError; assignments become
    ``x = None``; imports stay; every other statement is dropped for a ``# YOUR CODE HERE`` line.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise ValueError(
            f"the cell is not plain Python ({error.msg} on line {error.lineno}); "
            "move notebook magics (%, !) out of solution cells"
        ) from error
    lines = source.splitlines()
    parts: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parts.append(function_stub(node, lines))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            parts.append(assignment_stub(node, source))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            parts.append(ast.get_source_segment(source, node))
        elif not parts or parts[-1] != YOUR_CODE:
            parts.append(YOUR_CODE)
    return "\n\n".join(parts)


def make_student_copy(src: Path, dst: Path) -> int:
    """Write notebook ``src`` to ``dst`` with solution cells turned into stubs and outputs stripped.

    A note under the title says it is the student copy and where the solutions are. Returns the number of solution
    cells turned into stubs.
    """
    nb = nbformat.read(src, as_version=4)
    stubs = 0
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            try:
                cell.source = student_stub(cell.source)
            except ValueError as error:
                raise ValueError(f"{src}, solution cell {number}: {error}") from error
            stubs += 1
    note = nbformat.v4.new_markdown_cell(STUDENT_NOTE.format(marker=YOUR_CODE, name=Path(src).name))
    note.id = "student-copy-note"
    nb.cells.insert(1, note)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(strip_outputs(nb), dst)
    return stubs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m cvcourse.student", description=__doc__.splitlines()[0])
    parser.add_argument("src_dir", type=Path, help="folder of the chapter notebooks")
    parser.add_argument("dst_dir", type=Path, help="where the student copies go")
    args = parser.parse_args(argv)
    if args.src_dir.resolve() == args.dst_dir.resolve():
        parser.error(
            "SRC_DIR and DST_DIR are the same folder and the solutions would be lost; pass another DST_DIR"
        )
    if not args.src_dir.is_dir():
        parser.error(f"SRC_DIR {args.src_dir} is not a folder; pass the folder of the chapter notebooks")
    for src in find_notebooks([args.src_dir]):
        dst = args.dst_dir / src.name
        print(f"{dst}: {make_student_copy(src, dst)} exercise(s) turned into stubs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
