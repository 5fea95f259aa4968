"""The one-source pipeline: generated notebooks are fresh, learners' copies leak nothing, and a
source that disagrees with its solution or checks module is refused with a message that says how."""

import ast
import inspect
import re
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
    for name in _code_exercises(section):
        leaked = [line for line in _statement_lines(getattr(solutions, name)) if len(line) > 25 and line in code]
        assert not leaked, f"{name}: reference lines appear outside the collapsible solution: {leaked}"


def _code_exercises(section: Section) -> list[str]:
    """The exercises with a reference in the solutions module (findings have none: their answers are data)."""
    return [c.options["name"] for c in section.cells if c.kind == "exercise"]


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
    for name in _code_exercises(section):
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
from tests.harness import Case, Checker, Exercise, Finding, exact
from solutions.chapter0_fundamentals.fake_section import double
check = Checker("0.9", [Exercise(double, lambda gen: [Case((1,), expected=2)], hint="x + x"),
                        Finding("best_head", lambda: "L1H1", exact("the best head"), hint="layer 1")])
"""

FINDING = """
# %% [finding] best_head difficulty=3 importance=4 minutes=10
# Which head is best? Assign "L{layer}H{head}".
best_head = ...

# %% [hint]
# Which layer can read what an earlier layer wrote?

# %% [solution]
best_head = "L1H1"
"""


_EXERCISE_SOURCE = '''
# %% [markdown]
# # A fake section

# %%
from solutions.chapter0_fundamentals.fake_section import helper_for_notebook

# %% [exercise] double difficulty=1 importance=1 minutes=1
def double(x: int) -> int:
    """Twice x."""
    raise NotImplementedError()

# %% [hint]
# Which operation gives twice a number?

# %% [hint]
# `2 * x`
'''

SOURCE = _EXERCISE_SOURCE + FINDING


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


def _fake_getsource(obj):
    return f'def {obj.__name__}(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n'


def test_fake_section_is_valid(fake_section, monkeypatch):
    section = fake_section()
    monkeypatch.setattr(inspect, "getsource", _fake_getsource)
    validate(section)
    exercises, solved = (nbformat.reads(render(section, v), as_version=4) for v in ("exercises", "solved"))
    code = [[c.source for c in nb.cells if c.cell_type == "code"] for nb in (exercises, solved)]
    assert "raise NotImplementedError()" in code[0][1] and "return 2 * x" in code[1][1]
    assert 'check("double", double)' in code[0] and 'check("double", double)' in code[1]
    # A finding: the learner gets the placeholder and a folded solution; the solved notebook runs the analysis.
    assert "best_head = ..." in code[0][3] and code[1][3] == 'best_head = "L1H1"'
    assert code[0][4] == code[1][4] == 'check("best_head", best_head)'
    folded = [c.source for c in exercises.cells if "<summary>Solution</summary>" in c.source]
    assert len(folded) == 2 and 'best_head = "L1H1"' in folded[1]
    assert exercises.metadata["course"]["exercises"] == ["double", "best_head"]


# A [finding] whose check is a code Exercise: the kinds in the source and the checks must agree.
_NOT_A_FINDING = CHECKS.replace(
    'Finding("best_head", lambda: "L1H1", exact("the best head"), hint="layer 1")',
    'Exercise(best_head, lambda gen: [], hint="h")',
).replace("check = Checker", "def best_head(): ...\ncheck = Checker")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(source=SOURCE.replace("double", "triple")), "have no reference"),
        (dict(solutions=SOLUTIONS + "\ndef forgotten(): pass\n"), "neither sets as exercises nor imports"),
        (dict(source=SOURCE.replace("def double(x: int)", "def double(y: int)")), "differs from the reference"),
        (dict(source=SOURCE.replace("raise NotImplementedError()", "return x + x")), "must raise NotImplementedError"),
        (
            dict(checks=CHECKS.replace("check = Checker", "check = Checker('0.9', [])\nunused = Checker")),
            "exercises without a check ['best_head', 'double']",
        ),
        (dict(source=SOURCE.replace("# %% [hint]", "# %%\nx = 1\n\n# %% [hint]", 1)), "must follow an exercise"),
        (dict(source=SOURCE + '\n# %%\ncheck("double", double)\n'), "the build adds each exercise's check cell"),
        (dict(source=SOURCE.replace('    """Twice x."""\n', "")), "the docstring of stub double differs"),
        (
            dict(source=SOURCE.replace("# Which operation gives twice a number?", "# Try `return 2 * x`.")),
            "the first hint of double shows `return 2 * x`",
        ),
        (
            dict(source=SOURCE.replace("# Which operation gives twice a number?", "# ```python\n# x\n# ```")),
            "the first hint of double holds a code block",
        ),
        (dict(source=SOURCE.replace("best_head = ...", "best_head = None")), "must end with `best_head = ...`"),
        (dict(source=SOURCE.replace("# %% [solution]", "# %% [hint]")), "needs one [solution] cell"),
        (dict(checks=_NOT_A_FINDING), "is a [finding], but its check is not a Finding"),
    ],
)
def test_disagreements_are_refused(fake_section, change, message, monkeypatch):
    monkeypatch.setattr(inspect, "getsource", _fake_getsource)
    with pytest.raises(AuthoringError, match=re.escape(message)):
        validate(fake_section(**change))


def test_a_first_hint_may_name_a_tool(fake_section, monkeypatch):
    monkeypatch.setattr(inspect, "getsource", _fake_getsource)
    validate(
        fake_section(
            source=SOURCE.replace(
                "# Which operation gives twice a number?",
                "# Think about `torch.mul`, or about what `x` plus itself is.",
            )
        )
    )


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.number)
def test_every_stub_docstring_equals_its_reference(section):
    """validate() refuses a differing docstring; this names every one at once."""
    solutions = __import__(section.solutions_module, fromlist=["_"])
    for cell in section.cells:
        if cell.kind == "exercise":
            stub = next(n for n in ast.parse(cell.text).body if getattr(n, "name", "") == cell.options["name"])
            reference = getattr(solutions, cell.options["name"])
            assert ast.get_docstring(stub) == inspect.getdoc(reference), cell.options["name"]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.number)
def test_no_notebook_holds_a_duplicated_check_cell(section):
    for variant in ("exercises", "solved"):
        nb = nbformat.read(section.notebook_path(variant), as_version=4)
        checks = [
            line
            for c in nb.cells
            if c.cell_type == "code"
            for line in c.source.splitlines()
            if line.startswith("check(")
        ]
        assert len(checks) == len(set(checks)) == len(nb.metadata["course"]["exercises"]), (variant, checks)


def test_exercise_without_ratings_is_refused():
    with pytest.raises(AuthoringError, match="lacks importance, minutes"):
        parse_cells("# %% [exercise] double difficulty=1\ndef double(x): ...\n")


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.number)
def test_a_learner_notebook_never_imports_its_own_answers(section):
    """Support code lives apart from the references. A cell that starts with `# Fallback:` (for a
    learner who skipped a part) may import a reference; no other cell may."""
    nb = nbformat.read(section.notebook_path("exercises"), as_version=4)
    exercises = set(nb.metadata["course"]["exercises"])
    package, _, slug = section.solutions_module.rpartition(".")
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.source.startswith("# Fallback:"):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and node.module == section.solutions_module:
                leaked = exercises & {alias.name for alias in node.names}
                assert not leaked, f"a cell imports the reference of {sorted(leaked)}:\n{cell.source[:300]}"
            whole = (
                isinstance(node, ast.ImportFrom) and node.module == package and slug in {a.name for a in node.names}
            ) or (isinstance(node, ast.Import) and section.solutions_module in {a.name for a in node.names})
            assert not whole, (
                f"a cell imports the whole reference module {section.solutions_module}:\n{cell.source[:300]}"
            )
