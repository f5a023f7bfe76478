"""Keep committed notebooks clean (no outputs, no execution counts, no run metadata) and their install cells
pinned to the package version they were written with.

Command line (PATH is a notebook or a folder of notebooks)::

    python -m cvcourse.notebooks strip PATH...   # rewrite the notebooks that are not clean
    python -m cvcourse.notebooks check PATH...   # exit 1 listing the notebooks that are not clean
    python -m cvcourse.notebooks pin PATH...     # point every install cell at this version's release tag

On Colab the first code cell installs cvcourse from the release tag ``v<version>`` (``INSTALL_SPEC``), so a saved
notebook keeps working with the package it was written for, whatever changes on the main branch later.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from cvcourse import __version__

REPOSITORY = "https://github.com/cvcourse/cvcourse"
INSTALL_SPEC = f"cvcourse @ git+{REPOSITORY}@v{__version__}"
_INSTALL_LINE = re.compile(r'%pip install -q "cvcourse @ git\+[^"]*"')


def strip_outputs(nb: NotebookNode) -> NotebookNode:
    """Remove outputs, execution counts, cell timing metadata and saved widget state, in place; return nb."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    return nb


def problems(nb: NotebookNode) -> list[str]:
    """What strip_outputs would remove, one line per finding (cells counted from 1); [] when clean."""
    found = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code" and cell.outputs:
            found.append(f"cell {number} has outputs")
        if cell.cell_type == "code" and cell.execution_count is not None:
            found.append(f"cell {number} has execution count {cell.execution_count}")
        if "execution" in cell.metadata:
            found.append(f"cell {number} has execution timing metadata")
    if "widgets" in nb.metadata:
        found.append("notebook metadata holds saved widget state")
    return found


def install_specs(nb: NotebookNode) -> list[str]:
    """What the notebook's ``%pip install`` lines of cvcourse install, e.g. ``cvcourse @ git+...@v0.2.0``."""
    return [line.split('"')[1] for cell in nb.cells if cell.cell_type == "code"
            for line in _INSTALL_LINE.findall(cell.source)]


def pin_install(nb: NotebookNode) -> NotebookNode:
    """Point every install line of cvcourse at ``INSTALL_SPEC``, in place; return nb."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _INSTALL_LINE.sub(f'%pip install -q "{INSTALL_SPEC}"', cell.source)
    return nb


def find_notebooks(paths: Sequence[Path]) -> list[Path]:
    """The notebooks named by ``paths``: each path is a notebook, or a folder whose *.ipynb are taken."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(path.glob("*.ipynb")))
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} is neither a notebook (.ipynb) nor a folder; check the path")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m cvcourse.notebooks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command, summary in [("strip", "clean notebooks in place"), ("check", "exit 1 unless all are clean"),
                             ("pin", "pin the install cells to this version")]:
        commands.add_parser(command, help=summary).add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        paths = find_notebooks(args.paths)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.command == "pin":
        for path in paths:
            nbformat.write(pin_install(nbformat.read(path, as_version=4)), path)
        print(f"{len(paths)} notebook(s) install {INSTALL_SPEC}")
        return 0
    unclean = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        found = problems(nb)
        if found and args.command == "strip":
            nbformat.write(strip_outputs(nb), path)
            print(f"stripped {path}")
        elif found:
            unclean[path] = found
    for path, found in unclean.items():
        print(f"{path}: {'; '.join(found)}")
    if unclean:
        print(f"{len(unclean)} notebook(s) not clean; run: python -m cvcourse.notebooks strip PATH...")
        return 1
    print(f"{len(paths)} notebook(s) clean")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
