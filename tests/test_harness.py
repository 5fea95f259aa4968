"""The harness's own messages: each names the exercise, the input, expected vs got and a hint."""

import json

import pytest
import torch
from torch import nn

from tests import harness
from tests.harness import Case, Checker, CheckFailed, Exercise, compare, run_check


def add_one(x: torch.Tensor) -> torch.Tensor:
    return x + 1


def _cases(gen):
    yield Case((torch.zeros(2, 3),), "zeros", expected=torch.ones(2, 3))
    yield Case((torch.randn(4, 5, generator=gen),), "random 4 x 5")


ADD_ONE = Exercise(add_one, _cases, hint="Add one to every element.")


def _verdict(impl, exercise=ADD_ONE) -> CheckFailed:
    with pytest.raises(CheckFailed) as failure:
        run_check(exercise, impl)
    return failure.value


def test_pass_message_counts_cases():
    assert run_check(ADD_ONE, add_one) == "✓ add_one: passed all 2 cases."


def test_wrong_values_name_the_first_mismatching_index_and_the_input():
    def wrong(x):
        y = x + 1
        y[1, 2] = 7
        return y

    verdict = _verdict(wrong).verdict
    assert "wrong values at 1 of 6 elements; first at index (1, 2): expected 1, got 7" in verdict
    assert "case 1 of 2 (zeros)" in verdict and "Tensor float32 shape (2, 3)" in verdict
    assert verdict.rstrip().endswith("hint: Add one to every element.")


@pytest.mark.parametrize(
    "impl, status, text",
    [
        (lambda x: (x + 1).double(), "failed", "wrong dtype: expected torch.float32, got torch.float64"),
        (lambda x: (x + 1).T, "failed", "wrong shape: expected (2, 3), got (3, 2)"),
        (lambda x: (x + 1).numpy(), "failed", "expected a torch.Tensor, got numpy array float32 shape (2, 3)"),
        (lambda x: None, "failed", "output is None. Did you forget a `return`?"),
        (lambda x: x.add_(1), "failed", "modified its input #1 in place"),
        (lambda x: x @ x, "error", "raised RuntimeError"),
        ("add_one", "wrong type", "expected a function, got str 'add_one'"),
    ],
)
def test_each_mistake_gets_its_own_message(impl, status, text):
    failure = _verdict(impl)
    assert failure.status == status and text in failure.verdict, failure.verdict


def test_learner_exception_points_at_the_learner_line():
    def crashes(x):
        unused = 1  # noqa: F841
        return x[10]

    verdict = _verdict(crashes).verdict
    assert "raised IndexError" in verdict and "in crashes, line" in verdict and "return x[10]" in verdict


def test_jupyter_shows_only_the_verdict():
    lines = _verdict(lambda x: None)._render_traceback_()
    assert "✗ add_one: output is None" in lines[0] and lines[-1].strip().startswith("hint:")
    assert len(lines) <= 8 and not any("Traceback" in line for line in lines)


def test_nested_outputs_say_which_item_differs():
    with pytest.raises(harness.Mismatch, match=r"output\[1\]: wrong shape"):
        compare((torch.zeros(2), torch.zeros(3)), (torch.zeros(2), torch.zeros(4)), 1e-5, 1e-5)
    with pytest.raises(harness.Mismatch, match="expected True, got bool False"):
        compare(True, False, 0, 0)
    compare(2.0, torch.tensor(2.0), 1e-6, 0)  # a one-element tensor stands for a number


class Scale(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size))

    def forward(self, x):
        return x * self.weight


def test_module_checks_load_the_reference_weights():
    exercise = Exercise(
        Scale,
        lambda gen: [
            Case(
                (torch.ones(3),),
                init=(3,),
            )
        ],
        hint="h",
    )
    assert run_check(exercise, Scale).startswith("✓")

    class Renamed(nn.Module):
        def __init__(self, size):
            super().__init__()
            self.w = nn.Parameter(torch.randn(size))

    assert "parameters and buffers differ" in _verdict(Renamed, exercise).verdict
    assert "expected an nn.Module subclass" in _verdict(Scale(3), exercise).verdict


def test_checker_records_verdicts_for_the_grader(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(harness.RESULTS_ENV, str(results))
    check = Checker("9.9", [ADD_ONE])
    check("add_one", add_one)
    assert "✓ add_one" in capsys.readouterr().out
    with pytest.raises(CheckFailed):
        check("add_one", lambda x: x)
    with pytest.raises(CheckFailed, match="known: add_one"):
        check("add_two", add_one)
    statuses = [json.loads(line)["status"] for line in results.read_text().splitlines()]
    assert statuses == ["passed", "failed"]


def test_inputs_reach_the_learner_on_the_harness_device():
    seen = []
    run_check(ADD_ONE, lambda x: seen.append(x.device) or x + 1)
    assert seen and all(d.type == harness.DEVICE.type for d in seen)


class Counter:
    """A non-module class exercise: checked through a custom `run`."""

    def __init__(self, start: int):
        self.value = start

    def step(self) -> None:
        self.value += 1


def _count_three(cls, case):
    counter = cls(*case.args)
    for _ in range(3):
        counter.step()
    return counter.value


def test_custom_run_and_extra_checks():
    def no_negative_start(cls):
        assert cls(-1).value == -1, "Counter(-1) should start at -1"

    exercise = Exercise(
        Counter, lambda gen: [Case((2,), "from 2", expected=5)], hint="h", run=_count_three, extra=no_negative_start
    )
    assert run_check(exercise, Counter).startswith("✓")

    class StepsTwice(Counter):
        def step(self):
            self.value += 2

    class ClampsAtZero(Counter):
        def __init__(self, start):
            super().__init__(max(start, 0))

    assert "expected 5, got 8" in _verdict(StepsTwice, exercise).verdict
    assert "Counter(-1) should start at -1" in _verdict(ClampsAtZero, exercise).verdict
    assert "expected a class" in _verdict(Counter(0), exercise).verdict
