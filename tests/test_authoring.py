"""The one-source pipeline: generated notebooks are fresh, learners' copies leak nothing, and a
source that disagrees with its solution or checks module is refused with a message that says how."""

import ast
import inspect
import sys
import textwrap
import types

import nbformat
import pytest

from course.authoring import ROOT, AuthoringError, Section, all_sections, build, parse_cells, render, validate

SECTIONS = all_sections()


def test_there_are_sections():
    assert len(SECTIONS) >= 2


def test_generated_notebooks_are_fresh():
    stale = build(check_only=True)
    assert not stale, f"stale notebooks (run `course build`): {[str(p.relative_to(ROOT)) for p in stale]}"


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.number)
def test_exercise_notebooks_hold_no_outputs_and_no_reference_code(section):
    nb = nbformat.read(section.notebook_path("exercises"), as_version=4)
    solutions = __import__(section.solutions_module, fromlist=["_"])
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    for name in nb.metadata["course"]["exercises"]:
        leaked = [line for line in _statement_lines(getattr(solutions, name)) if len(line) > 25 and line in code]
        assert not leaked, f"{name}: reference lines appear outside the collapsible solution: {leaked}"


def _statement_lines(obj) -> list[str]:
    """The lines of the statements in obj's function bodies: no signatures, docstrings or comments."""
    source = textwrap.dedent(inspect.getsource(obj))
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for statement in body:
                lines += ast.get_source_segment(source, statement).splitlines()
    return [line.strip() for line in lines if not line.strip().startswith("#")]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.number)
def test_solved_notebook_runs_the_reference(section):
    nb = nbformat.read(section.notebook_path("solved"), as_version=4)
    solutions = __import__(section.solutions_module, fromlist=["_"])
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    for name in nb.metadata["course"]["exercises"]:
        assert inspect.getsource(getattr(solutions, name)).rstrip() in code


# ----------------------------------------------------------------------------- refusing disagreements

SOLUTIONS = '''
def double(x: int) -> int:
    """Twice x."""
    return 2 * x

def helper_for_notebook() -> int:
    return 1
'''

CHECKS = """
from tests.harness import Case, Checker, Exercise
from solutions.chapter0_fundamentals.fake_section import double
check = Checker("0.9", [Exercise(double, lambda gen: [Case((1,), expected=2)], hint="x + x")])
"""

SOURCE = """
# %% [markdown]
# # A fake section

# %%
from solutions.chapter0_fundamentals.fake_section import helper_for_notebook

# %% [exercise] double difficulty=1 importance=1 minutes=1
def double(x: int) -> int:
    raise NotImplementedError()

# %% [hint]
# Add x to itself.
"""


@pytest.fixture
def fake_section(monkeypatch):
    """A section whose modules exist only in memory, so each test can break one of them."""

    def make(source=SOURCE, solutions=SOLUTIONS, checks=CHECKS) -> Section:
        for name, code in [
            ("solutions.chapter0_fundamentals.fake_section", solutions),
            ("tests.checks.chapter0_fundamentals.fake_section", checks),
        ]:
            module = types.ModuleType(name)
            exec(textwrap.dedent(code), module.__dict__)
            monkeypatch.setitem(sys.modules, name, module)
        path = ROOT / "chapter0_fundamentals" / "src" / "0.9_fake_section.py"
        return Section(path, "chapter0_fundamentals", "0.9", "fake_section", parse_cells(source))

    return make


def test_fake_section_is_valid(fake_section, monkeypatch):
    section = fake_section()
    monkeypatch.setattr(inspect, "getsource", lambda obj: f"def {obj.__name__}(x: int) -> int:\n    return 2 * x\n")
    validate(section)
    exercises, solved = render(section, "exercises"), render(section, "solved")
    assert "raise NotImplementedError()" in exercises and "<summary>Hint 1</summary>" in exercises
    assert "return 2 * x" in solved and 'check(\\"double\\", double)' in solved


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(source=SOURCE.replace("double", "triple")), "have no reference"),
        (dict(solutions=SOLUTIONS + "\ndef forgotten(): pass\n"), "neither sets as exercises nor imports"),
        (dict(source=SOURCE.replace("def double(x: int)", "def double(y: int)")), "differs from the reference"),
        (dict(source=SOURCE.replace("raise NotImplementedError()", "return x + x")), "must raise NotImplementedError"),
        (
            dict(checks=CHECKS.replace("check = Checker", "check = Checker('0.9', [])\nunused = Checker")),
            "exercises without a check ['double']",
        ),
        (dict(source=SOURCE.replace("# %% [hint]", "# %%\nx = 1\n\n# %% [hint]")), "must follow an exercise"),
    ],
)
def test_disagreements_are_refused(fake_section, change, message):
    with pytest.raises(AuthoringError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(fake_section(**change))


def test_exercise_without_ratings_is_refused():
    with pytest.raises(AuthoringError, match="lacks importance, minutes"):
        parse_cells("# %% [exercise] double difficulty=1\ndef double(x): ...\n")
