"""The course's exercise checker.

Each section has a checks module (``tests/checks/<chapter>/<section>.py``) that lists one
``Exercise`` per exercise: the reference implementation, a seeded generator of input cases, a
hint, and realistic wrong implementations that the self-tests prove it rejects. Notebooks call

    check("intersect_ray_1d", intersect_ray_1d)

which runs the learner's code and the reference on the same inputs and prints one verdict. A
failure is raised as ``CheckFailed``, whose traceback Jupyter renders as the verdict alone, so the
cell is marked failed (nbval, "run all" and the grader see it) without a page of traceback.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
RESULTS_ENV = "COURSE_RESULTS"  # set by `course check`: where each verdict is appended as JSON


class _Unset:
    def __repr__(self) -> str:
        return "<computed by the reference>"


UNSET = _Unset()


@dataclass
class Case:
    """One input to an exercise: positional args, a label shown in messages, and optionally the
    known-correct answer (hand-computed examples pin the reference itself down)."""

    args: tuple
    label: str = ""
    expected: Any = UNSET
    kwargs: dict = field(default_factory=dict)
    init: tuple = ()  # constructor args, for nn.Module exercises


@dataclass
class Exercise:
    """How to check one exercise. ``cases(gen)`` yields Cases from a seeded torch.Generator.

    By default a function is called on each case's args; an nn.Module class is built from
    ``case.init``, given the reference instance's weights, and called on the args. ``run(impl, case)``
    replaces that for other shapes of exercise (an optimizer class stepped a few times, say): its
    result for the learner's impl is compared with its result for the reference. ``extra(impl)``
    runs after the cases and raises AssertionError for what outputs cannot show (an initialisation).
    ``oracle`` is an independent implementation (often torch's own) that pins the reference in the
    self-tests, where hand-computed ``expected`` answers are impractical.
    """

    reference: Callable
    cases: Callable[[torch.Generator], Iterable[Case]]
    hint: str
    wrong: dict[str, Callable] = field(default_factory=dict)
    run: Callable[[Any, Case], Any] | None = None
    extra: Callable[[Any], None] | None = None
    oracle: Callable | None = None
    atol: float = 1e-5
    rtol: float = 1e-4
    seed: int = 0

    @property
    def name(self) -> str:
        return self.reference.__name__

    @property
    def is_module(self) -> bool:
        return inspect.isclass(self.reference) and issubclass(self.reference, nn.Module)


class CheckFailed(AssertionError):
    """A failed check. Jupyter shows only the verdict (via ``_render_traceback_``)."""

    def __init__(self, exercise: str, status: str, verdict: str):
        super().__init__(verdict)
        self.exercise, self.status, self.verdict = exercise, status, verdict

    def _render_traceback_(self) -> list[str]:
        return [f"\033[31m{line}\033[0m" if i == 0 else line for i, line in enumerate(self.verdict.splitlines())]


class Mismatch(Exception):
    """What differs, raised by a comparison or by an exercise's own `run`; it becomes a CheckFailed."""


# ----------------------------------------------------------------------------- describing values


def describe(value: Any, width: int = 90) -> str:
    """A one-line description: type, dtype, shape and the first few values."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()[:6].cpu().tolist()
        shown = ", ".join(_fmt(v) for v in flat) + (", ..." if value.numel() > 6 else "")
        return f"Tensor {str(value.dtype).removeprefix('torch.')} shape {tuple(value.shape)} [{shown}]"
    if isinstance(value, np.ndarray):
        return f"numpy array {value.dtype} shape {value.shape}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v, width=40) for v in value[:3]) + (", ..." if len(value) > 3 else "")
        text = f"{type(value).__name__} of {len(value)}: ({inner})"
    elif isinstance(value, nn.Module):
        text = f"{type(value).__name__} module"
    else:
        text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= width else text[: width - 3] + "..."


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------- comparing outputs


def compare(expected: Any, got: Any, atol: float, rtol: float, where: str = "output") -> None:
    """Raise Mismatch describing the first difference between expected and got."""
    if got is None and expected is not None:
        raise Mismatch(f"{where} is None. Did you forget a `return`?")
    if isinstance(expected, torch.Tensor):
        _compare_tensors(expected, got, atol, rtol, where)
    elif isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise Mismatch(
                f"{where}: expected a {type(expected).__name__} of {len(expected)} items, got {describe(got)}"
            )
        for i, (e, g) in enumerate(zip(expected, got)):
            compare(e, g, atol, rtol, where=f"{where}[{i}]")
    elif isinstance(expected, bool):
        got = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(got, (bool, np.bool_)) or bool(got) != expected:
            raise Mismatch(f"{where}: expected {expected!r}, got {describe(got)}")
    elif isinstance(expected, (int, float)):
        got = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(got, (int, float, np.number)) or isinstance(got, bool):
            raise Mismatch(f"{where}: expected a number, got {describe(got)}")
        if abs(got - expected) > atol + rtol * abs(expected):
            raise Mismatch(f"{where}: expected {_fmt(float(expected))}, got {_fmt(float(got))}")
    elif got != expected:
        raise Mismatch(f"{where}: expected {describe(expected)}, got {describe(got)}")


def _compare_tensors(expected: torch.Tensor, got: Any, atol: float, rtol: float, where: str) -> None:
    if not isinstance(got, torch.Tensor):
        extra = " Convert with torch.from_numpy / torch.tensor." if isinstance(got, (np.ndarray, list)) else ""
        raise Mismatch(f"{where}: expected a torch.Tensor, got {describe(got)}.{extra}")
    got = got.detach().cpu()
    if got.shape != expected.shape:
        raise Mismatch(f"{where}: wrong shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}")
    if got.dtype != expected.dtype:
        raise Mismatch(f"{where}: wrong dtype: expected {expected.dtype}, got {got.dtype}")
    if expected.dtype.is_floating_point or expected.dtype.is_complex:
        bad = ~torch.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    else:
        bad = got != expected
    if bad.any():
        index = tuple(bad.nonzero()[0].tolist())
        raise Mismatch(
            f"{where}: wrong values at {int(bad.sum())} of {bad.numel()} elements; first at index {index}: "
            f"expected {_fmt(expected[index].item())}, got {_fmt(got[index].item())}"
        )


# ----------------------------------------------------------------------------- running a check


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply fn to every tensor in a (possibly nested) tuple, list or dict."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _to_device(value: Any) -> Any:
    return _map_tensors(value, lambda t: t.to(DEVICE))


def _detach(value: Any) -> Any:
    return _map_tensors(value, lambda t: t.detach().cpu())


def _learner_location(error: BaseException) -> str:
    """The innermost frame of the learner's own code (not torch's, not ours), as 'line N: code'."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != __file__]
    mine = [f for f in frames if "site-packages" not in f.filename and "/lib/python" not in f.filename]
    if not mine:
        return ""
    frame = mine[-1]
    return f" (in {frame.name}, line {frame.lineno}: {(frame.line or '').strip()})"


def _run_both(exercise: Exercise, impl: Any, case: Case) -> tuple[Any, Any]:
    """Run the learner's impl on case.args as given (so in-place edits show) and the reference on a copy.
    For modules, the learner's instance is given the reference instance's weights first."""
    reference_case = copy.deepcopy(case)
    if exercise.run:
        got = exercise.run(impl, case)
        return got, case.expected if case.expected is not UNSET else exercise.run(exercise.reference, reference_case)
    if exercise.is_module:
        reference = exercise.reference(*case.init).to(DEVICE)
        module = impl(*case.init).to(DEVICE)
        _load_reference_weights(module, reference)
        got = module(*case.args, **case.kwargs)
    else:
        reference, got = exercise.reference, impl(*case.args, **case.kwargs)
    if case.expected is not UNSET:
        return got, case.expected
    with torch.no_grad():
        return got, reference(*reference_case.args, **reference_case.kwargs)


def _load_reference_weights(module: nn.Module, reference_module: nn.Module) -> None:
    expected = {k: tuple(v.shape) for k, v in reference_module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if expected != got:
        raise Mismatch(f"parameters and buffers differ: expected {expected}, got {got}")
    module.load_state_dict(reference_module.state_dict())


def run_check(exercise: Exercise, impl: Any) -> str:
    """Check impl against the exercise; return the pass message or raise CheckFailed."""
    name = exercise.name
    fail = lambda status, text: CheckFailed(name, status, f"✗ {name}: {text}\n  hint: {exercise.hint}")  # noqa: E731
    if exercise.is_module and not (inspect.isclass(impl) and issubclass(impl, nn.Module)):
        raise fail("wrong type", f"expected an nn.Module subclass (the class itself), got {describe(impl)}.")
    if inspect.isclass(exercise.reference) and not inspect.isclass(impl):
        raise fail("wrong type", f"expected a class (the class itself, not an instance), got {describe(impl)}.")
    if not callable(impl):
        raise fail("wrong type", f"expected a function, got {describe(impl)}.")
    gen = torch.Generator().manual_seed(exercise.seed)
    cases = list(exercise.cases(gen))
    for number, case in enumerate(cases, start=1):
        label = f"case {number} of {len(cases)}" + (f" ({case.label})" if case.label else "")
        inputs = "\n".join(f"    {describe(a)}" for a in case.args) or "    (no inputs)"
        case = Case(_to_device(case.args), case.label, case.expected, _to_device(case.kwargs), case.init)
        untouched = copy.deepcopy(case.args)
        try:
            got, expected = _run_both(exercise, impl, case)
        except NotImplementedError:
            raise fail("not implemented", "not implemented yet (it raises NotImplementedError).") from None
        except Mismatch as m:
            raise fail("failed", f"{m}") from None
        except Exception as error:  # noqa: BLE001 - any learner error becomes one readable message
            raise fail(
                "error",
                f"raised {type(error).__name__}: {error}{_learner_location(error)}\n  on {label}; inputs:\n{inputs}",
            ) from None
        for position, (before, after) in enumerate(zip(untouched, case.args)):
            try:
                compare(before, after, 0.0, 0.0)
            except Mismatch:
                raise fail(
                    "failed",
                    f"modified its input #{position + 1} in place on {label}. Work on a copy or use out-of-place ops.",
                ) from None
        expected, got = _detach(expected), _detach(got)
        try:
            compare(expected, got, exercise.atol, exercise.rtol)
        except Mismatch as m:
            raise fail(
                "failed",
                f"{m}\n  on {label}; inputs:\n{inputs}\n  expected: {describe(expected)}\n  got:      {describe(got)}",
            ) from None
    if exercise.extra:
        try:
            exercise.extra(impl)
        except NotImplementedError:
            raise fail("not implemented", "not implemented yet (it raises NotImplementedError).") from None
        except AssertionError as problem:
            raise fail("failed", str(problem)) from None
        except Exception as error:  # noqa: BLE001
            raise fail("error", f"raised {type(error).__name__}: {error}{_learner_location(error)}") from None
    return f"✓ {name}: passed all {len(cases)} cases."


def _record(section: str, exercise: str, status: str, message: str) -> None:
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"section": section, "exercise": exercise, "status": status, "message": message}) + "\n")


class Checker:
    """The ``check`` callable of one section: ``check("name", learner_impl)``."""

    def __init__(self, section: str, exercises: list[Exercise]):
        self.section = section
        self.exercises = {e.name: e for e in exercises}
        if len(self.exercises) != len(exercises):
            raise ValueError(f"section {section}: two exercises share a name")

    def __iter__(self) -> Iterator[Exercise]:
        return iter(self.exercises.values())

    def __call__(self, name: str, impl: Any) -> None:
        if name not in self.exercises:
            raise CheckFailed(
                name,
                "unknown",
                f"✗ no exercise called {name!r} in section {self.section}; known: {', '.join(self.exercises)}",
            )
        try:
            message = run_check(self.exercises[name], impl)
        except CheckFailed as failure:
            _record(self.section, name, failure.status, failure.verdict)
            raise
        _record(self.section, name, "passed", message)
        print(message)
