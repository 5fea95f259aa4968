"""`course check` on learners' notebooks: it reports exactly the exercises they solved, keeps
reporting after a notebook breaks, and writes one table for a folder of submissions."""

import csv
import importlib
import inspect

import nbformat
import pytest

from course.authoring import all_sections
from course.cli import main
from course.grading import Row, summary

SECTION = all_sections()[0]


def _learner_notebook(solved: int, die_after: int | None = None) -> nbformat.NotebookNode:
    """The exercise notebook with its first `solved` exercises filled in from the reference; the
    kernel dies (os._exit) right after the check of exercise number `die_after`."""
    nb = nbformat.read(SECTION.notebook_path("exercises"), as_version=4)
    solutions = importlib.import_module(SECTION.solutions_module)
    names = nb.metadata["course"]["exercises"]
    for cell in list(nb.cells):
        for number, name in enumerate(names, start=1):
            if (
                number <= solved
                and cell.cell_type == "code"
                and cell.source.startswith((f"def {name}(", f"class {name}("))
            ):
                cell.source = inspect.getsource(getattr(solutions, name))
            if number == die_after and cell.source == f'check("{name}", {name})':
                nb.cells.insert(nb.cells.index(cell) + 1, nbformat.v4.new_code_cell("import os; os._exit(1)"))
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    nbformat.write(_learner_notebook(solved=2), folder / "alice.ipynb")
    (folder / "bob").mkdir()
    nbformat.write(_learner_notebook(solved=3, die_after=1), folder / "bob" / "0.0.ipynb")
    table = folder / "results.csv"
    exit_code = main(["check", str(folder), "--csv", str(table), "--timeout", "120"])
    with table.open() as f:
        return exit_code, list(csv.DictReader(f))


def test_reports_exactly_the_solved_exercises(graded):
    exit_code, rows = graded
    alice = [r for r in rows if r["learner"] == "alice"]
    names = SECTION.exercises
    assert [r["exercise"] for r in alice] == [c.options["name"] for c in names]
    assert [r["status"] for r in alice] == ["passed"] * 2 + ["not implemented"] * (len(names) - 2)
    assert exit_code == 1


def test_a_notebook_that_dies_half_way_still_reports_what_it_reached(graded):
    _, rows = graded
    bob = [r["status"] for r in rows if r["learner"] == "bob"]
    assert bob[0] == "passed" and set(bob[1:]) == {"not reached"}


def test_all_passing_notebook_exits_zero(tmp_path, capsys):
    nbformat.write(_learner_notebook(solved=len(SECTION.exercises)), tmp_path / "carol.ipynb")
    assert main(["check", str(tmp_path / "carol.ipynb")]) == 0
    assert f"{len(SECTION.exercises)}/{len(SECTION.exercises)} exercises passed" in capsys.readouterr().out


def test_a_corrupt_notebook_and_a_missing_path_do_not_stop_the_others(tmp_path, capsys):
    """One error row for the corrupt notebook, one line for the missing path, the valid one graded;
    `--jobs 2` prints the same table."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    nbformat.write(_learner_notebook(solved=1), folder / "dana.ipynb")
    (folder / "erin.ipynb").write_text('{"cells": [', encoding="utf-8")
    tables = []
    for jobs in ("1", "2"):
        exit_code = main(["check", str(folder), str(tmp_path / "nobody.ipynb"), "--timeout", "120", "--jobs", jobs])
        captured = capsys.readouterr()
        assert exit_code == 1 and "Traceback" not in captured.out + captured.err
        assert f"no such file or folder: {tmp_path / 'nobody.ipynb'}" in captured.err
        tables.append(captured.out.replace("\r", ""))
    assert tables[0] == tables[1]
    assert "erin (erin.ipynb): 0/1 exercises passed" in tables[0] and "unreadable notebook" in tables[0]
    assert f"dana (dana.ipynb): 1/{len(SECTION.exercises)} exercises passed" in tables[0]


def test_pass_rates_are_keyed_by_section_and_exercise():
    rows = [
        Row("a", "a.ipynb", "0.2", "Linear", "passed", ""),
        Row("a", "a.ipynb", "0.4", "Linear", "failed", "x"),
        Row("b", "b.ipynb", "0.2", "Linear", "failed", "x"),
    ]
    table = summary(rows, {})
    assert "0.2  Linear    1/2" in table and "0.4  Linear    0/1" in table
