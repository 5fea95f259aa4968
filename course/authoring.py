"""One source of truth per section: a percent-format text source becomes two notebooks.

A section is three files found by convention (``0.1_ray_tracing`` in ``chapter0_fundamentals``):

    chapter0_fundamentals/src/0.1_ray_tracing.py        the source (prose, code, exercise stubs)
    solutions/chapter0_fundamentals/ray_tracing.py      the reference implementations
    tests/checks/chapter0_fundamentals/ray_tracing.py   the harness checks, with wrong implementations

``course build`` writes from them

    chapter0_fundamentals/0.1_ray_tracing.ipynb         learner: stubs, hints, collapsible solutions
    chapter0_fundamentals/solved/0.1_ray_tracing.ipynb  the same cells running the reference code

Source cells start with a percent marker line, as in jupytext and editors that run ``# %%`` cells:

    # %%                       code, copied as it is
    # %% [markdown]            markdown, each line's leading "# " removed
    # %% [exercise] NAME difficulty=2 importance=4 minutes=15
    def NAME(...) -> ...:      the stub; the solved notebook gets the reference source instead
        raise NotImplementedError()
    # %% [hint]                markdown shown collapsed after the exercise (several allowed)
    # %% [finding] NAME difficulty=3 importance=4 minutes=20
    NAME = ...                 a discovery exercise: the learner assigns what their analysis found;
    # %% [solution]            after its hints, the analysis that finds it (the solved notebook runs
                               it; the learner's copy shows it folded). The check grades NAME against
                               the truth recorded for it (a tests.harness.Finding).

The build adds each exercise's ``check(...)`` cell itself, and refuses what would mislead a learner:
a source with its own check cells, a stub whose docstring differs from its reference's, and a first
hint that shows code from the answer (hints are tiered: the first says what to think about, the
next narrows it, the solution shows the code).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tests.harness import Finding

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = (
    "chapter0_fundamentals",
    "chapter1_transformer_interp",
    "chapter2_rl",
    "chapter3_evals",
    "chapter4_alignment_science",
)
VARIANTS = ("exercises", "solved")

_MARKER = re.compile(r"^# %%(?:\s+\[(?P<kind>[\w-]+)\])?\s*(?P<rest>.*)$")
_SOURCE_NAME = re.compile(r"^(?P<number>\d+\.\d+(?:\.\d+)?)_(?P<slug>[a-z0-9_]+)\.py$")
_RATINGS = ("difficulty", "importance", "minutes")


class AuthoringError(ValueError):
    """A source, solution module and checks module that do not agree."""


@dataclass
class Cell:
    kind: str  # "code", "markdown", "exercise", "finding", "hint" or "solution"
    text: str
    line: int  # line of the marker in the source, for error messages
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Section:
    source: Path
    chapter: str
    number: str  # "0.1", or "1.3.1" for a subsection
    slug: str  # "ray_tracing"
    cells: list[Cell]

    @property
    def solutions_module(self) -> str:
        return f"solutions.{self.chapter}.{self.slug}"

    @property
    def checks_module(self) -> str:
        return f"tests.checks.{self.chapter}.{self.slug}"

    def notebook_path(self, variant: str) -> Path:
        folder = ROOT / self.chapter / ("solved" if variant == "solved" else "")
        return folder / f"{self.number}_{self.slug}.ipynb"

    @property
    def exercises(self) -> list[Cell]:
        """Every graded cell, code exercises and findings, in order."""
        return [c for c in self.cells if c.kind in ("exercise", "finding")]

    def following(self, cell: Cell, kind: str) -> list[Cell]:
        """The cells of `kind` in the run of hint and solution cells right after `cell`."""
        found = []
        start = next(i for i, c in enumerate(self.cells) if c is cell) + 1
        for later in self.cells[start:]:
            if later.kind not in ("hint", "solution"):
                break
            found += [later] if later.kind == kind else []
        return found


# ----------------------------------------------------------------------------- parsing


def parse_cells(text: str) -> list[Cell]:
    cells: list[Cell] = []
    for number, line in enumerate(text.splitlines(), start=1):
        marker = _MARKER.match(line)
        if marker:
            kind = marker["kind"] or "code"
            if kind not in ("code", "markdown", "exercise", "finding", "hint", "solution"):
                raise AuthoringError(f"line {number}: unknown cell kind [{kind}]")
            cells.append(Cell(kind, "", number, _parse_options(kind, marker["rest"], number)))
        elif cells:
            cells[-1].text += line + "\n"
        elif line.strip() and not line.startswith("#"):
            raise AuthoringError(f"line {number}: code before the first '# %%' marker")
    for cell in cells:
        cell.text = cell.text.strip("\n")
        if cell.kind in ("markdown", "hint"):
            cell.text = "\n".join(re.sub(r"^# ?", "", l) for l in cell.text.splitlines())
    return cells


def _parse_options(kind: str, rest: str, line: int) -> dict[str, str]:
    if kind not in ("exercise", "finding"):
        return {}
    name, *pairs = rest.split()
    options = {"name": name, **dict(p.split("=", 1) for p in pairs)}
    missing = [r for r in _RATINGS if r not in options]
    if missing:
        raise AuthoringError(f"line {line}: exercise {name} lacks {', '.join(missing)}")
    return options


def load_section(source: Path) -> Section:
    match = _SOURCE_NAME.match(source.name)
    if not match or source.parent.name != "src" or source.parent.parent.name not in CHAPTERS:
        raise AuthoringError(f"{source}: sources live at <chapter>/src/<N.M or N.M.K>_<slug>.py")
    cells = parse_cells(source.read_text(encoding="utf-8"))
    return Section(source, source.parent.parent.name, match["number"], match["slug"], cells)


def all_sections() -> list[Section]:
    return [load_section(p) for chapter in CHAPTERS for p in sorted((ROOT / chapter / "src").glob("*.py"))]


# ----------------------------------------------------------------------------- validating


def validate(section: Section) -> None:
    """Raise AuthoringError where the source, solutions and checks disagree."""
    where = section.source.relative_to(ROOT)
    names = [c.options["name"] for c in section.exercises]
    if len(set(names)) != len(names):
        raise AuthoringError(f"{where}: an exercise name appears twice")
    for previous, cell in zip(section.cells, section.cells[1:]):
        if cell.kind in ("hint", "solution") and previous.kind not in ("exercise", "finding", "hint", "solution"):
            raise AuthoringError(f"{where}:{cell.line}: a [{cell.kind}] cell must follow an exercise or finding")
    for cell in section.cells:
        if cell.kind == "code" and re.search(r"^check\(", cell.text, re.M):
            raise AuthoringError(f"{where}:{cell.line}: the build adds each exercise's check cell; remove this one")

    code_names = [c.options["name"] for c in section.cells if c.kind == "exercise"]
    solutions = importlib.import_module(section.solutions_module)
    defined = {
        n
        for n, obj in vars(solutions).items()
        if not n.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == solutions.__name__
    }
    imported = _names_imported_from(section)
    if missing := [n for n in code_names if n not in defined]:
        raise AuthoringError(f"{where}: exercise(s) {missing} have no reference in {section.solutions_module}")
    if orphans := sorted(defined - set(code_names) - imported):
        raise AuthoringError(
            f"{section.solutions_module} defines {orphans}, which {where} neither sets as "
            "exercises nor imports: use them, or make them private (_name)"
        )

    checks = {e.name: e for e in importlib.import_module(section.checks_module).check}
    if set(names) != set(checks):
        raise AuthoringError(
            f"{where} and {section.checks_module} disagree: exercises without a check "
            f"{sorted(set(names) - set(checks))}, checks without an exercise "
            f"{sorted(set(checks) - set(names))}"
        )
    for cell in section.exercises:
        name = cell.options["name"]
        if cell.kind == "finding":
            _validate_finding(section, cell, checks[name], where)
        else:
            reference = getattr(solutions, name)
            _validate_stub(cell, reference, where)
            _validate_first_hint(section, cell, inspect.getsource(reference), where)


def _validate_finding(section: Section, cell: Cell, check: object, where: Path) -> None:
    name = cell.options["name"]
    if not isinstance(check, Finding):
        raise AuthoringError(f"{where}:{cell.line}: {name} is a [finding], but its check is not a Finding")
    if not re.search(rf"^{name}\b[^=\n]*= \.\.\.", cell.text, re.M):
        raise AuthoringError(f"{where}:{cell.line}: the finding {name} must end with `{name} = ...` for the learner")
    solution = section.following(cell, "solution")
    if len(solution) != 1 or not re.search(rf"^{name}\b[^=\n]*=", solution[0].text, re.M):
        raise AuthoringError(f"{where}:{cell.line}: the finding {name} needs one [solution] cell that assigns {name}")
    _validate_first_hint(section, cell, solution[0].text, where)


def _validate_first_hint(section: Section, cell: Cell, answer: str, where: Path) -> None:
    """The first hint says what to think about: it shows no code taken from the answer."""
    hints = section.following(cell, "hint")
    if not hints:
        return
    first = hints[0].text
    if "```" in first:
        raise AuthoringError(
            f"{where}:{hints[0].line}: the first hint of {cell.options['name']} holds a code block; "
            "say what to think about, and keep code for a later hint or the solution"
        )
    code = {re.sub(r"\s+", "", line) for line in answer.splitlines()}
    hint_lines = {re.sub(r"\s+", "", line) for line in first.splitlines()}
    if shared := sorted(line for line in code & hint_lines if len(line) >= 10 and not line.startswith("#")):
        raise AuthoringError(
            f"{where}:{hints[0].line}: the first hint of {cell.options['name']} repeats a line of "
            f"the answer ({shared[0]}): make it say what to think about"
        )
    for span in re.findall(r"`([^`]+)`", first):
        compact = re.sub(r"\s+", "", span)
        # A bare name (`einsum`, `torch.where`) names a tool; an expression from the answer gives it away.
        if len(compact) >= 5 and not re.fullmatch(r"[\w.]+", compact) and any(compact in line for line in code):
            raise AuthoringError(
                f"{where}:{hints[0].line}: the first hint of {cell.options['name']} shows `{span}`, "
                "code from the answer: make it say what to think about"
            )


def _names_imported_from(section: Section) -> set[str]:
    names = set()
    for cell in section.cells:
        if cell.kind == "code":
            for node in ast.walk(ast.parse(cell.text)):
                if isinstance(node, ast.ImportFrom) and node.module == section.solutions_module:
                    names |= {alias.name for alias in node.names}
    return names


def _validate_stub(cell: Cell, reference: object, where: Path) -> None:
    name = cell.options["name"]
    tree = ast.parse(cell.text)
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name]
    if not defs:
        raise AuthoringError(f"{where}:{cell.line}: the stub of exercise {name} does not define {name}")
    if "NotImplementedError" not in cell.text:
        raise AuthoringError(f"{where}:{cell.line}: the stub of {name} must raise NotImplementedError")
    stub = defs[0]
    _same_docstring(ast.get_docstring(stub), reference, name, where, cell)
    methods = [stub] if isinstance(stub, ast.FunctionDef) else [n for n in stub.body if isinstance(n, ast.FunctionDef)]
    for method in methods:
        target = reference if isinstance(stub, ast.FunctionDef) else getattr(reference, method.name, None)
        if target is None:
            raise AuthoringError(f"{where}:{cell.line}: stub method {name}.{method.name} is not in the reference")
        if isinstance(stub, ast.ClassDef):
            _same_docstring(ast.get_docstring(method), target, f"{name}.{method.name}", where, cell)
        expected = list(inspect.signature(target).parameters)
        got = [a.arg for a in method.args.posonlyargs + method.args.args + method.args.kwonlyargs]
        got += [a.arg for a in (method.args.vararg, method.args.kwarg) if a]
        if isinstance(stub, ast.ClassDef):
            got = got[1:]  # inspect.signature on an unbound method keeps self; the class form drops it
            expected = expected[1:]
        if got != expected:
            raise AuthoringError(
                f"{where}:{cell.line}: stub {method.name}{tuple(got)} differs from the reference "
                f"{method.name}{tuple(expected)}"
            )


def _same_docstring(stub_doc: str | None, reference: object, name: str, where: Path, cell: Cell) -> None:
    """A stub promises what its reference does: the two docstrings must agree word for word."""
    reference_doc = inspect.getdoc(reference) if reference.__doc__ else None
    if (stub_doc or None) != (reference_doc or None):
        raise AuthoringError(
            f"{where}:{cell.line}: the docstring of stub {name} differs from its reference's; "
            f"make them the same.\n  stub:      {stub_doc!r}\n  reference: {reference_doc!r}"
        )


# ----------------------------------------------------------------------------- rendering


def _dots(n: int, filled: str) -> str:
    return filled * n + "⚪" * (5 - n)


def _exercise_cells(section: Section, cell: Cell, variant: str) -> list:
    name, o = cell.options["name"], cell.options
    if cell.kind == "finding":
        solution = section.following(cell, "solution")[0].text
        kind = "Finding"
    else:
        solution = inspect.getsource(getattr(importlib.import_module(section.solutions_module), name)).rstrip()
        kind = "Exercise"
    header = (
        f"**{kind} `{name}`** · Difficulty {_dots(int(o['difficulty']), '🔴')} · "
        f"Importance {_dots(int(o['importance']), '🔵')} · about {o['minutes']} minutes"
    )
    hints = section.following(cell, "hint")
    folded = [f"<details><summary>Hint {i}</summary>\n\n{h.text}\n\n</details>" for i, h in enumerate(hints, 1)]
    folded.append(f"<details><summary>Solution</summary>\n\n```python\n{solution}\n```\n\n</details>")
    return [
        nbformat.v4.new_markdown_cell(header),
        nbformat.v4.new_code_cell(solution if variant == "solved" else cell.text),
        nbformat.v4.new_markdown_cell("\n\n".join(folded)),
        nbformat.v4.new_code_cell(f'check("{name}", {name})'),
    ]


def render(section: Section, variant: str) -> str:
    """The notebook text for one variant ("exercises" or "solved")."""
    nb = nbformat.v4.new_notebook()
    for cell in section.cells:
        if cell.kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell.text))
        elif cell.kind == "code":
            nb.cells.append(nbformat.v4.new_code_cell(cell.text))
        elif cell.kind in ("exercise", "finding"):
            nb.cells.extend(_exercise_cells(section, cell, variant))
    for number, nb_cell in enumerate(nb.cells):
        nb_cell["id"] = f"cell-{number}"
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "course": {
            "section": section.number,
            "variant": variant,
            "exercises": [c.options["name"] for c in section.exercises],
            "generated_from": str(section.source.relative_to(ROOT)),
        },
    }
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def build(sections: list[Section] | None = None, check_only: bool = False) -> list[Path]:
    """Validate and (re)write every generated notebook; return the paths that were (or would be) changed."""
    stale = []
    for section in sections if sections is not None else all_sections():
        validate(section)
        for variant in VARIANTS:
            path = section.notebook_path(variant)
            text = render(section, variant)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
                if not check_only:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
    return stale
