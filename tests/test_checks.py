"""Self-tests of every exercise check: the reference passes, hand-computed answers pin the reference
down, and realistic wrong implementations (plus a stub, a None and a wrong shape) are rejected with
one short readable message. For findings (discovery exercises): the recorded truth passes, and
each realistic wrong answer is rejected with a message that does not give the truth away."""

import dataclasses
import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import tests.checks
from tests import harness
from tests.harness import UNSET, CheckFailed, Exercise, Finding, run_check, run_finding


def _all_checks(kind: type) -> list:
    found = []
    for info in pkgutil.walk_packages(tests.checks.__path__, prefix="tests.checks."):
        module = importlib.import_module(info.name)
        if hasattr(module, "check"):
            found += [
                pytest.param(e, id=f"{module.check.section}-{e.name}") for e in module.check if isinstance(e, kind)
            ]
    return found


EXERCISES = _all_checks(Exercise)
FINDINGS = _all_checks(Finding)


def _wrong_shape(value):
    if isinstance(value, torch.Tensor):
        return value.unsqueeze(0)
    if isinstance(value, (tuple, list)):
        return type(value)([_wrong_shape(value[0]), *value[1:]])
    return torch.tensor([value, value])


def _generic_wrong(exercise: Exercise) -> dict:
    """A stub, a `return None` and a wrong shape, in the form the exercise takes (function or class).
    Exercises with their own `run` (an optimizer, say) have no single output to get wrong generically."""
    reference = exercise.reference
    if inspect.isclass(reference) and (exercise.run or not exercise.is_module):

        class StubClass:
            def __init__(self, *args, **kwargs):
                raise NotImplementedError()

        return {"not implemented": StubClass}
    if exercise.is_module:

        class Stub(nn.Module):
            def __init__(self, *args, **kwargs):
                raise NotImplementedError()

        class ReturnsNone(reference):
            def forward(self, *args, **kwargs):
                return None

        class WrongShape(reference):
            def forward(self, *args, **kwargs):
                return _wrong_shape(super().forward(*args, **kwargs))

        return {"not implemented": Stub, "returns None": ReturnsNone, "wrong shape": WrongShape}

    def stub(*args, **kwargs):
        raise NotImplementedError()

    return {
        "not implemented": stub,
        "returns None": lambda *a, **k: None,
        "wrong shape": lambda *a, **k: _wrong_shape(reference(*a, **k)),
    }


@pytest.mark.parametrize("exercise", EXERCISES)
def test_reference_passes(exercise):
    assert run_check(exercise, exercise.reference).startswith("✓")


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_reference_is_pinned_independently(exercise):
    """Hand-computed answers (checked by test_reference_passes) or an independent oracle."""
    known = [c for c in exercise.cases(torch.Generator().manual_seed(exercise.seed)) if c.expected is not UNSET]
    assert known or exercise.oracle, f"{exercise.name} needs a Case with a hand-computed `expected`, or an oracle"
    if exercise.oracle:
        assert run_check(dataclasses.replace(exercise, reference=exercise.oracle), exercise.reference).startswith("✓")


@pytest.mark.parametrize("exercise", EXERCISES)
def test_realistic_wrong_implementations_fail(exercise, monkeypatch):
    # Naming the mistake re-runs every wrong implementation on the failing case: quadratic in their
    # number, and tested once in test_harness, so it is skipped here.
    monkeypatch.setattr(harness, "_diagnosis", lambda *args: "")
    assert exercise.wrong, f"{exercise.name} lists no realistic wrong implementation"
    for description, wrong in exercise.wrong.items():
        with pytest.raises(CheckFailed) as failure:
            run_check(exercise, wrong)
        assert failure.value.status in ("failed", "error"), f"{description}: {failure.value.verdict}"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_generic_mistakes_give_one_short_message(exercise):
    for description, wrong in [*_generic_wrong(exercise).items(), ("not callable", None)]:
        with pytest.raises(CheckFailed) as failure:
            run_check(exercise, wrong)
        verdict = failure.value.verdict
        assert verdict.startswith(f"✗ {exercise.name}:"), verdict
        assert "Traceback" not in verdict and len(verdict.splitlines()) <= 12, f"{description}:\n{verdict}"
        assert "hint:" in verdict


@pytest.mark.parametrize("finding", FINDINGS)
def test_the_recorded_truth_passes_a_finding(finding):
    assert run_finding(finding, finding.truth()).startswith("✓")


@pytest.mark.parametrize("finding", FINDINGS)
def test_wrong_findings_are_rejected_without_giving_the_truth_away(finding):
    assert finding.wrong, f"{finding.name} lists no realistic wrong answer"
    truth = finding.truth()
    for description, answer in [*finding.wrong.items(), ("no answer yet", ...)]:
        with pytest.raises(CheckFailed) as failure:
            run_finding(finding, answer)
        verdict = failure.value.verdict
        assert verdict.startswith(f"✗ {finding.name}:") and "hint:" in verdict, f"{description}: {verdict}"
        if isinstance(truth, (str, int)) and not isinstance(truth, bool):
            assert repr(truth) not in verdict and f" {truth} " not in verdict, (
                f"{description} reveals the truth: {verdict}"
            )
