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
import dataclasses
import functools
import inspect
import json
import math
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

    def __deepcopy__(self, memo: dict) -> _Unset:
        return self  # a sentinel: copies of a Case must still test `expected is UNSET`


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
    self-tests, where hand-computed ``expected`` answers are impractical. ``compare(expected, got)``
    replaces the element-wise comparison (raise Mismatch on a difference): sampling exercises use
    it to test a statistic within a stated interval (see ``proportions_within``).

    When a learner's output fails a case and equals what one of the ``wrong`` implementations
    gives on it, the verdict names that mistake, so each ``wrong`` key is written as a diagnosis.
    """

    reference: Callable
    cases: Callable[[torch.Generator], Iterable[Case]]
    hint: str
    wrong: dict[str, Callable] = field(default_factory=dict)
    run: Callable[[Any, Case], Any] | None = None
    extra: Callable[[Any], None] | None = None
    oracle: Callable | None = None
    compare: Callable[[Any, Any], None] | None = None
    arrays: bool = False  # a NumPy section: messages speak of arrays, not tensors
    atol: float = 1e-5
    rtol: float = 1e-4
    seed: int = 0

    @property
    def name(self) -> str:
        return self.reference.__name__

    @property
    def is_module(self) -> bool:
        return inspect.isclass(self.reference) and issubclass(self.reference, nn.Module)


@dataclass
class Finding:
    """A discovery exercise: the learner submits what their analysis found (a head, a layer, a set of
    heads, a rate, a direction), not code, and it is graded against the truth we planted or recorded.

    ``truth()`` loads that truth (from a zoo model's metrics.json, say) when first needed;
    ``grade(answer, truth)`` returns None for an acceptable answer, or a sentence saying what is off
    without giving the truth away (see ``exact``, ``same_set``, ``number_within``, ``direction_within``).
    ``wrong`` maps realistic mistakes to the answers they produce; the self-tests prove each is rejected.
    """

    name: str
    truth: Callable[[], Any]
    grade: Callable[[Any, Any], str | None]
    hint: str
    wrong: dict[str, Any] = field(default_factory=dict)


def exact(what: str) -> Callable[[Any, Any], str | None]:
    """Grade an answer that must equal the truth (a head name, a layer index)."""
    return lambda answer, truth: None if answer == truth else f"{answer!r} is not {what}."


def same_set(what: str) -> Callable[[Any, Any], str | None]:
    """Grade a collection of items (heads, neurons) that must be exactly the true set, in any order."""

    def grade(answer: Any, truth: Any) -> str | None:
        if isinstance(answer, (str, bytes)) or not isinstance(answer, Iterable):
            return f"expected a collection (list or set) of {what}, got {describe(answer)}."
        answer, truth = set(answer), set(truth)
        if answer == truth:
            return None
        wrong, missed = sorted(answer - truth, key=str), len(truth - answer)
        parts = [f"{', '.join(map(str, wrong))} {'is' if len(wrong) == 1 else 'are'} not {what}"] if wrong else []
        parts += [f"you missed {missed} of the {len(truth)}"] if missed else []
        return "; ".join(parts) + "."

    return grade


def number_within(atol: float, what: str) -> Callable[[Any, Any], str | None]:
    """Grade a measured number (a rate, a loss, an accuracy) that must be within atol of the truth."""

    def grade(answer: Any, truth: float) -> str | None:
        if isinstance(answer, torch.Tensor) and answer.numel() == 1:
            answer = answer.item()
        if not isinstance(answer, (int, float, np.number)) or isinstance(answer, bool):
            return f"expected a number for {what}, got {describe(answer)}."
        if abs(answer - truth) <= atol:
            return None
        return f"your {what}, {answer:.4g}, is too {'high' if answer > truth else 'low'} (allowed: within {atol:g})."

    return grade


def direction_within(min_cosine: float, what: str) -> Callable[[Any, Any], str | None]:
    """Grade a direction (a vector; its sign matters, its norm does not) by cosine similarity."""

    def grade(answer: Any, truth: torch.Tensor) -> str | None:
        if not isinstance(answer, torch.Tensor) or answer.shape != truth.shape:
            return f"expected {what} as a tensor of shape {tuple(truth.shape)}, got {describe(answer)}."
        cosine = torch.cosine_similarity(answer.detach().cpu().float().flatten(), truth.float().flatten(), dim=0)
        if cosine >= min_cosine:
            return None
        return f"your {what} has cosine similarity {cosine:.3f} with the true one (needed: at least {min_cosine:g})."

    return grade


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


def describe(value: Any, width: int = 90, arrays: bool = False) -> str:
    """A one-line description: type, dtype, shape and the first few values. In a NumPy section
    (``arrays=True``), the tensors the checks hold are described as the arrays the learner sees."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()[:6].cpu().tolist()
        shown = ", ".join(_fmt(v) for v in flat) + (", ..." if value.numel() > 6 else "")
        kind = "array" if arrays else "Tensor"
        return f"{kind} {str(value.dtype).removeprefix('torch.')} shape {tuple(value.shape)} [{shown}]"
    if isinstance(value, np.ndarray):
        return f"numpy array {value.dtype} shape {value.shape}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v, 40, arrays) for v in value[:3]) + (", ..." if len(value) > 3 else "")
        text = f"{type(value).__name__} of {len(value)}: ({inner})"
    elif isinstance(value, dict):
        inner = ", ".join(f"{k!r}: {describe(v, 40, arrays)}" for k, v in list(value.items())[:3])
        text = f"dict of {len(value)}: {{{inner}{', ...' if len(value) > 3 else ''}}}"
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
    elif isinstance(expected, dict):
        _compare_dicts(expected, got, atol, rtol, where)
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        if type(got) is not type(expected):
            raise Mismatch(f"{where}: expected a {type(expected).__name__}, got {describe(got)}")
        for f in dataclasses.fields(expected):
            compare(getattr(expected, f.name), getattr(got, f.name), atol, rtol, where=f"{where}.{f.name}")
    elif isinstance(expected, str):
        _compare_strings(expected, got, where)
    elif isinstance(expected, bool):
        got = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(got, (bool, np.bool_)) or bool(got) != expected:
            raise Mismatch(f"{where}: expected {expected!r}, got {describe(got)}")
    elif isinstance(expected, (int, float)):
        got = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(got, (int, float, np.number)) or isinstance(got, bool):
            raise Mismatch(f"{where}: expected a number, got {describe(got)}")
        same = got == expected or (math.isnan(expected) and math.isnan(got))
        if not same and not abs(got - expected) <= atol + rtol * abs(expected):
            raise Mismatch(f"{where}: expected {_fmt_pair(float(expected), float(got))}")
    elif got != expected:
        raise Mismatch(f"{where}: expected {describe(expected)}, got {describe(got)}")


def _compare_dicts(expected: dict, got: Any, atol: float, rtol: float, where: str) -> None:
    if not isinstance(got, dict):
        raise Mismatch(f"{where}: expected a dict with keys {sorted(map(str, expected))}, got {describe(got)}")
    missing, extra = [k for k in expected if k not in got], [k for k in got if k not in expected]
    if missing or extra:
        raise Mismatch(f"{where}: wrong keys: missing {missing or 'none'}, unexpected {extra or 'none'}")
    for key in expected:
        compare(expected[key], got[key], atol, rtol, where=f"{where}[{key!r}]")


def _compare_strings(expected: str, got: Any, where: str) -> None:
    if not isinstance(got, str):
        raise Mismatch(f"{where}: expected a str, got {describe(got)}")
    if got != expected:
        at = next((i for i, (e, g) in enumerate(zip(expected, got)) if e != g), min(len(expected), len(got)))
        raise Mismatch(
            f"{where}: strings differ from character {at}: expected {expected[at : at + 30]!r}, "
            f"got {got[at : at + 30]!r} (lengths {len(expected)} and {len(got)})"
        )


def _fmt_pair(expected: float, got: float) -> str:
    """The pair as "E, got G", printed with enough digits that the two numbers differ."""
    for digits in range(4, 17):
        e, g = f"{expected:.{digits}g}", f"{got:.{digits}g}"
        if e != g:
            return f"{e}, got {g}"
    return f"{expected!r}, got {got!r}"


def proportions_within(z: float = 4.0) -> Callable[[Any, Any], None]:
    """A comparator for sampling exercises: ``expected`` holds probabilities, ``got`` empirical
    frequencies of n draws (a pair ``(frequencies, n)``); each must lie within z binomial standard
    errors of its probability (z=4: a correct sampler fails one case in about 15,000 per item)."""

    def check(expected: torch.Tensor, got: Any) -> None:
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Mismatch(f"output: expected (frequencies, number of draws), got {describe(got)}")
        frequencies, n = got
        compare(expected, frequencies, atol=float("inf"), rtol=0.0)  # type, shape and dtype only
        stderr = (expected * (1 - expected) / n).sqrt().clamp(min=1 / n)
        far = (frequencies - expected).abs() > z * stderr
        if far.any():
            index = tuple(far.nonzero()[0].tolist())
            raise Mismatch(
                f"output: item {index} was drawn with frequency {frequencies[index].item():.4f} "
                f"over {n} draws, but has probability {expected[index].item():.4f} "
                f"(allowed: within {z:g} standard errors, ±{z * stderr[index].item():.4f})"
            )

    return check


def _compare_tensors(expected: torch.Tensor, got: Any, atol: float, rtol: float, where: str) -> None:
    if not isinstance(got, torch.Tensor):
        extra = " Convert with torch.from_numpy / torch.tensor." if isinstance(got, (np.ndarray, list)) else ""
        raise Mismatch(f"{where}: expected a torch.Tensor, got {describe(got)}.{extra}")
    got = got.detach().cpu()
    if got.shape != expected.shape:
        raise Mismatch(f"{where}: wrong shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}")
    if got.dtype != expected.dtype:
        raise Mismatch(
            f"{where}: wrong dtype: expected {str(expected.dtype).removeprefix('torch.')}, "
            f"got {str(got.dtype).removeprefix('torch.')}"
        )
    if expected.dtype.is_floating_point or expected.dtype.is_complex:
        bad = ~torch.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    else:
        bad = got != expected
    if bad.any():
        index = tuple(bad.nonzero()[0].tolist())
        e, g = expected[index].item(), got[index].item()
        pair = _fmt_pair(float(e), float(g)) if isinstance(e, float) else f"{e}, got {g}"
        raise Mismatch(
            f"{where}: wrong values at {int(bad.sum())} of {bad.numel()} elements; first at index {index}: "
            f"expected {pair}"
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
        reference, module = _build_pair(exercise, impl, case)
        got = module(*case.args, **case.kwargs)
    else:
        reference, got = exercise.reference, impl(*case.args, **case.kwargs)
    if case.expected is not UNSET:
        return got, case.expected
    with torch.no_grad():
        return got, reference(*reference_case.args, **reference_case.kwargs)


def _build_pair(exercise: Exercise, impl: type[nn.Module], case: Case) -> tuple[nn.Module, nn.Module]:
    """The reference module and the learner's, holding the same weights. The reference is built under a
    fixed seed (without touching the learner's random state), so every run of a case sees the same weights
    and a wrong implementation can be compared with the learner's output."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(exercise.seed)
        reference = exercise.reference(*case.init).to(DEVICE)
    module = impl(*case.init).to(DEVICE)
    _load_reference_weights(module, reference)
    return reference, module


def _load_reference_weights(module: nn.Module, reference_module: nn.Module) -> None:
    expected = {k: tuple(v.shape) for k, v in reference_module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if expected != got:
        missing = [k for k in expected if k not in got]
        unexpected = [k for k in got if k not in expected]
        misshapen = [f"{k} {got[k]} (expected {expected[k]})" for k in expected if k in got and got[k] != expected[k]]
        problems = [f"missing {missing}"] * bool(missing) + [f"unexpected {unexpected}"] * bool(unexpected)
        problems += [f"wrong shape {', '.join(misshapen)}"] * bool(misshapen)
        raise Mismatch("parameters and buffers differ from the reference's: " + "; ".join(problems))
    module.load_state_dict(reference_module.state_dict())


def _compare_output(exercise: Exercise, expected: Any, got: Any) -> None:
    """The exercise's comparison; an unexpected error inside it (a learner's odd return value) becomes a Mismatch."""
    try:
        if exercise.compare:
            exercise.compare(expected, got)
        else:
            compare(expected, got, exercise.atol, exercise.rtol)
    except Mismatch:
        raise
    except Exception as error:  # noqa: BLE001
        raise Mismatch(
            f"output could not be compared with the expected {describe(expected)} "
            f"({type(error).__name__}: {error}); got {describe(got)}"
        ) from None


def _known_mistake(exercise: Exercise, case: Case, got: Any, earlier: list[Case]) -> str:
    """The `wrong` implementation that explains got, as a message, or "". It must give got on this case;
    where several do (a boolean output, say), the one that also passes the cases the learner passed."""
    bare = dataclasses.replace(exercise, wrong={})

    def outputs(wrong: Any, on: Case) -> tuple[Any, Any]:  # run as the learner's was: gradients on
        wrong_output, expected = _run_both(bare, wrong, copy.deepcopy(on))
        return _detach(wrong_output), _detach(expected)

    def explains(wrong: Any) -> bool:
        try:
            compare(outputs(wrong, case)[0], got, exercise.atol, exercise.rtol)
            return True
        except Exception:  # noqa: BLE001 - this wrong implementation does not explain the output
            return False

    def passes_earlier(wrong: Any) -> bool:
        try:
            for on in earlier:
                _compare_output(exercise, *reversed(outputs(wrong, on)))
            return True
        except Exception:  # noqa: BLE001
            return False

    matches = [description for description, wrong in exercise.wrong.items() if explains(wrong)]
    if len(matches) > 1:
        matches = [d for d in matches if passes_earlier(exercise.wrong[d])] or matches
    return f"\n  this is what you get with a known mistake: {matches[0]}." if matches else ""


def _first_divergent_submodule(exercise: Exercise, impl: type[nn.Module], case: Case) -> str:
    """For a model built from parts: the first submodule (in the order the learner's forward runs them)
    whose output differs from the reference's on the same input, as a message, or "". If that part's
    input already differs, the mistake is in the wiring between parts, and the message says so."""
    calls: dict[str, dict] = {"impl": {}, "reference": {}}
    modules = dict(zip(("reference", "impl"), _build_pair(exercise, impl, case)))

    def record(who: str, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:  # returns None: the output is kept
            calls[who].setdefault(name, (_detach(inputs), _detach(output)))

        return hook

    for who, module in modules.items():
        for name, sub in module.named_modules():
            if name:
                sub.register_forward_hook(record(who, name))
        with torch.no_grad():
            module(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
    for name, (got_input, got_output) in calls["impl"].items():
        if name not in calls["reference"]:
            continue
        expected_input, expected_output = calls["reference"][name]
        try:
            compare(expected_output, got_output, exercise.atol, exercise.rtol, where=name)
        except Mismatch as m:
            part = f"`{name}` ({type(modules['impl'].get_submodule(name)).__name__})"
            try:
                compare(expected_input, got_input, exercise.atol, exercise.rtol, where=f"{name}'s input")
            except Mismatch as wiring:
                return (
                    f"\n  the first part whose output differs is {part}, but its input already differs "
                    f"({wiring}): look at what your forward passes to it"
                )
            except Exception:  # noqa: BLE001
                pass
            return f"\n  the first part whose output differs is {part}: {m}"
        except Exception:  # noqa: BLE001
            continue
    return ""


def _diagnosis(exercise: Exercise, impl: Any, case: Case, got: Any, earlier: list[Case]) -> str:
    """Why a case failed, beyond the mismatch: a known mistake, or the part of a composite that diverges."""
    if exercise.wrong:
        if found := _known_mistake(exercise, case, got, earlier):
            return found
    if exercise.is_module and not exercise.run and case.expected is UNSET:
        try:
            return _first_divergent_submodule(exercise, impl, case)
        except Exception:  # noqa: BLE001 - a diagnosis is a bonus; the verdict stands without it
            return ""
    return ""


def _failure(name: str, hint: str, status: str, text: str) -> CheckFailed:
    """The verdict of a failed check: the exercise's name, what is wrong, and its hint."""
    return CheckFailed(name, status, f"✗ {name}: {text}\n  hint: {hint}")


def run_check(exercise: Exercise, impl: Any) -> str:
    """Check impl against the exercise; return the pass message or raise CheckFailed."""
    name = exercise.name
    fail = functools.partial(_failure, name, exercise.hint)
    if exercise.is_module and not (inspect.isclass(impl) and issubclass(impl, nn.Module)):
        raise fail("wrong type", f"expected an nn.Module subclass (the class itself), got {describe(impl)}.")
    if inspect.isclass(exercise.reference) and not inspect.isclass(impl):
        raise fail("wrong type", f"expected a class (the class itself, not an instance), got {describe(impl)}.")
    if not callable(impl):
        raise fail("wrong type", f"expected a function, got {describe(impl)}.")
    gen = torch.Generator().manual_seed(exercise.seed)
    cases = list(exercise.cases(gen))
    passed: list[Case] = []  # as given to the learner, for telling apart mistakes that fail a case alike
    for number, case in enumerate(cases, start=1):
        label = f"case {number} of {len(cases)}" + (f" ({case.label})" if case.label else "")
        inputs = "\n".join(f"    {describe(a, arrays=exercise.arrays)}" for a in case.args) or "    (no inputs)"
        case = Case(_to_device(case.args), case.label, case.expected, _to_device(case.kwargs), case.init)
        pristine = copy.deepcopy(case)
        untouched = pristine.args
        try:
            got, expected = _run_both(exercise, impl, case)
        except NotImplementedError:
            raise fail("not implemented", "not implemented yet (it raises NotImplementedError).") from None
        except Mismatch as m:  # raised by an exercise's own `run`, or by loading a module's weights
            raise fail("failed", f"{m}\n  on {label}; inputs:\n{inputs}") from None
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
            _compare_output(exercise, expected, got)
        except Mismatch as m:
            diagnosis = _diagnosis(exercise, impl, pristine, got, passed)
            raise fail(
                "failed",
                f"{m}\n  on {label}; inputs:\n{inputs}\n  expected: {describe(expected, arrays=exercise.arrays)}\n"
                f"  got:      {describe(got, arrays=exercise.arrays)}{diagnosis}",
            ) from None
        passed.append(pristine)
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


def run_finding(finding: Finding, answer: Any) -> str:
    """Grade a submitted finding against the truth; return the pass message or raise CheckFailed."""
    fail = functools.partial(_failure, finding.name, finding.hint)
    if answer is Ellipsis or answer is None:
        raise fail("not implemented", "no answer yet: replace the `...` with what your analysis found.")
    truth = finding.truth()
    try:
        problem = finding.grade(answer, truth)
    except Exception as error:  # noqa: BLE001 - an odd answer becomes one readable message
        raise fail("error", f"could not grade {describe(answer)} ({type(error).__name__}: {error}).") from None
    if problem:
        raise fail("failed", problem)
    return f"✓ {finding.name}: your finding matches the truth."


def _record(section: str, exercise: str, status: str, message: str) -> None:
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"section": section, "exercise": exercise, "status": status, "message": message}) + "\n")


class Checker:
    """The ``check`` callable of one section: ``check("name", learner_impl)`` for an exercise,
    ``check("name", answer)`` for a finding."""

    def __init__(self, section: str, exercises: list[Exercise | Finding]):
        self.section = section
        self.exercises = {e.name: e for e in exercises}
        if len(self.exercises) != len(exercises):
            raise ValueError(f"section {section}: two exercises share a name")

    def __iter__(self) -> Iterator[Exercise | Finding]:
        return iter(self.exercises.values())

    def __call__(self, name: str, impl: Any) -> None:
        if name not in self.exercises:
            raise CheckFailed(
                name,
                "unknown",
                f"✗ no exercise called {name!r} in section {self.section}; known: {', '.join(self.exercises)}",
            )
        exercise = self.exercises[name]
        try:
            message = run_finding(exercise, impl) if isinstance(exercise, Finding) else run_check(exercise, impl)
        except CheckFailed as failure:
            _record(self.section, name, failure.status, failure.verdict)
            raise
        _record(self.section, name, "passed", message)
        print(message)
