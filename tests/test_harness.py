"""The harness's own messages: each names the exercise, the input, expected vs got and a hint."""

import dataclasses
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
        (lambda x: (x + 1).double(), "failed", "wrong dtype: expected float32, got float64"),
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


# ----------------------------------------------------------------------------- structured outputs


@dataclasses.dataclass
class Stats:
    mean: torch.Tensor
    label: str


@pytest.mark.parametrize(
    "expected, got, text",
    [
        ({"a": torch.zeros(2), "b": 1.0}, {"a": torch.zeros(2)}, "wrong keys: missing ['b'], unexpected none"),
        ({"a": torch.zeros(2)}, {"a": torch.ones(2)}, "output['a']: wrong values at 2 of 2"),
        ({"a": 1}, [1], "expected a dict with keys ['a'], got list"),
        (Stats(torch.zeros(3), "x"), Stats(torch.zeros(4), "x"), "output.mean: wrong shape"),
        (Stats(torch.zeros(3), "x"), (torch.zeros(3), "x"), "expected a Stats, got tuple"),
        ("L1H1 attends", "L1H3 attends", "strings differ from character 3: expected '1 attends', got '3 attends'"),
        ("abc", 3, "expected a str, got int 3"),
        (1.0, 1.0 + 1e-6, "expected 1, got 1.000001"),  # enough digits that the two numbers differ
        (torch.tensor([-1.4763]), torch.tensor([-1.4758]), "expected -1.4763, got -1.4758"),
    ],
)
def test_structured_outputs_say_where_they_differ(expected, got, text):
    with pytest.raises(harness.Mismatch) as mismatch:
        compare(expected, got, 1e-7, 0)
    assert text in str(mismatch.value), str(mismatch.value)


def test_equal_structures_and_infinities_pass():
    compare({"a": (torch.zeros(2), "s")}, {"a": (torch.zeros(2), "s")}, 0, 0)
    compare(Stats(torch.ones(1), "y"), Stats(torch.ones(1), "y"), 0, 0)
    compare(float("-inf"), float("-inf"), 0, 0)
    compare(float("nan"), float("nan"), 0, 0)


def test_an_error_inside_a_comparison_becomes_one_message():
    class Weird:
        def __eq__(self, other):
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")

    exercise = Exercise(lambda: Weird(), lambda gen: [Case(())], hint="h")
    failure = _verdict(lambda: 3, exercise)
    assert (
        failure.status == "failed" and "could not be compared" in failure.verdict and "RuntimeError" in failure.verdict
    )


# ----------------------------------------------------------------------------- diagnosis


def scaled_dot(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return q @ k.T / q.shape[-1] ** 0.5


SCALED_DOT = Exercise(
    scaled_dot,
    lambda gen: [Case((torch.randn(3, 4, generator=gen), torch.randn(2, 4, generator=gen)), "random q, k")],
    hint="Think about the variance of the scores.",
    wrong={"no 1/sqrt(d_head) scale": lambda q, k: q @ k.T, "keys and queries swapped": lambda q, k: k @ q.T},
)


def test_a_known_mistake_is_named_for_a_module():
    class Doubles(Scale):  # its output depends on the weights, which differ on every fresh build
        def forward(self, x):
            return 2 * x * self.weight

    exercise = Exercise(Scale, lambda gen: [Case((torch.ones(3),), init=(3,))], hint="h", wrong={"doubles": Doubles})
    assert "known mistake: doubles." in _verdict(Doubles, exercise).verdict


def test_a_known_mistake_is_named():
    verdict = _verdict(lambda q, k: q @ k.T, SCALED_DOT).verdict
    assert "this is what you get with a known mistake: no 1/sqrt(d_head) scale." in verdict


def test_an_unknown_mistake_is_not_misnamed():
    verdict = _verdict(lambda q, k: q @ k.T / 3, SCALED_DOT).verdict
    assert "known mistake" not in verdict and "wrong values" in verdict


class Norm(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size))

    def forward(self, x):
        return (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=False) + 1e-5).sqrt() * self.weight


class TwoLayers(nn.Module):
    norm_class = Norm

    def __init__(self, size: int):
        super().__init__()
        self.first = nn.Linear(size, size)
        self.norm = self.norm_class(size)
        self.last = nn.Linear(size, 2)

    def forward(self, x):
        return self.last(self.norm(self.first(x)))


def test_a_composite_module_names_the_first_part_that_diverges():
    class StdNorm(Norm):
        def forward(self, x):  # divides by std + eps: wrong for small variances
            return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5) * self.weight

    class LearnerModel(TwoLayers):
        norm_class = StdNorm

    exercise = Exercise(TwoLayers, lambda gen: [Case((torch.randn(5, 4, generator=gen),), init=(4,))], hint="h")
    verdict = _verdict(LearnerModel, exercise).verdict
    assert "the first part whose output differs is `norm` (StdNorm)" in verdict, verdict


def test_a_part_fed_the_wrong_input_is_blamed_on_the_wiring():
    class SkipsFirst(TwoLayers):
        def forward(self, x):
            return self.last(self.norm(x))  # never calls `first`

    exercise = Exercise(TwoLayers, lambda gen: [Case((torch.randn(5, 4, generator=gen),), init=(4,))], hint="h")
    verdict = _verdict(SkipsFirst, exercise).verdict
    assert "`norm` (Norm), but its input already differs" in verdict and "what your forward passes" in verdict


def test_dicts_are_described_in_one_line():
    text = harness.describe({"keys": torch.zeros(2, 3), "values": torch.ones(2)})
    assert text.startswith("dict of 2: {'keys': Tensor float32 shape (2, 3)") and "\n" not in text


def test_differing_parameters_are_named_by_key():
    class Extra(TwoLayers):
        def __init__(self, size):
            super().__init__(size)
            self.bonus = nn.Linear(size, 3)
            self.last = nn.Linear(size, 3)

    exercise = Exercise(TwoLayers, lambda gen: [Case((torch.randn(5, 4, generator=gen),), init=(4,))], hint="h")
    verdict = _verdict(Extra, exercise).verdict
    assert "unexpected ['bonus.weight', 'bonus.bias']" in verdict
    assert "wrong shape last.weight (3, 4) (expected (2, 4))" in verdict
    assert "OrderedDict" not in verdict and len(verdict) < 600


# ----------------------------------------------------------------------------- statistical checks


def _sample_counts(sampler, case):
    """Draw 4,000 samples from a distribution and return their frequencies."""
    gen = torch.Generator().manual_seed(1)
    probs = case.args[0]
    draws = torch.stack([sampler(probs, gen) for _ in range(4000)])
    return torch.bincount(draws, minlength=len(probs)).float() / len(draws), len(draws)


def test_statistical_comparison_accepts_a_correct_sampler_and_rejects_a_biased_one():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    exercise = Exercise(
        lambda p, gen: torch.multinomial(p, 1, generator=gen)[0],
        lambda gen: [Case((probs,), "p", expected=probs)],
        hint="h",
        run=_sample_counts,
        compare=harness.proportions_within(z=4),
    )
    assert run_check(exercise, lambda p, gen: torch.multinomial(p, 1, generator=gen)[0]).startswith("✓")
    greedy_ish = lambda p, gen: torch.multinomial(p**2, 1, generator=gen)[0]  # sharpened: temperature 0.5
    verdict = _verdict(greedy_ish, exercise).verdict
    assert "item (0,) was drawn with frequency" in verdict and "probability 0.5000" in verdict


# ----------------------------------------------------------------------------- findings


HEAD = harness.Finding("strongest_head", lambda: "L1H1", harness.exact("the strongest induction head"), hint="h")


def test_findings_are_graded_against_the_truth():
    assert harness.run_finding(HEAD, "L1H1").startswith("✓")
    with pytest.raises(CheckFailed, match="'L0H3' is not the strongest induction head") as failure:
        harness.run_finding(HEAD, "L0H3")
    assert failure.value.status == "failed"
    with pytest.raises(CheckFailed, match="no answer yet") as failure:
        harness.run_finding(HEAD, ...)
    assert failure.value.status == "not implemented"


@pytest.mark.parametrize(
    "grade, truth, answer, text",
    [
        (
            harness.same_set("induction heads"),
            ["L1H1", "L1H2"],
            ["L1H1", "L0H3"],
            "L0H3 is not induction heads; you missed 1 of the 2",
        ),
        (harness.same_set("induction heads"), ["L1H1"], "L1H1", "expected a collection"),
        (harness.number_within(0.05, "accuracy"), 0.9, 0.7, "your accuracy, 0.7, is too low (allowed: within 0.05)"),
        (harness.number_within(0.05, "accuracy"), 0.9, "high", "expected a number for accuracy"),
        (
            harness.direction_within(0.9, "truth direction"),
            torch.tensor([1.0, 0.0]),
            torch.tensor([0.0, 1.0]),
            "cosine similarity 0.000 with the true one",
        ),
        (harness.direction_within(0.9, "truth direction"), torch.tensor([1.0, 0.0]), torch.tensor([1.0]), "shape (2,)"),
    ],
)
def test_finding_graders_say_what_is_off(grade, truth, answer, text):
    finding = harness.Finding("f", lambda: truth, grade, hint="h")
    with pytest.raises(CheckFailed) as failure:
        harness.run_finding(finding, answer)
    assert text in failure.value.verdict, failure.value.verdict


def test_finding_graders_accept_close_answers():
    assert harness.number_within(0.05, "rate")(torch.tensor(0.93), 0.9) is None
    assert harness.direction_within(0.9, "d")(torch.tensor([2.0, 0.1]), torch.tensor([1.0, 0.0])) is None
    assert harness.same_set("heads")({"b", "a"}, ["a", "b"]) is None


def test_checker_routes_findings_and_records_them(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(harness.RESULTS_ENV, str(results))
    check = Checker("9.9", [ADD_ONE, HEAD])
    check("strongest_head", "L1H1")
    assert "✓ strongest_head" in capsys.readouterr().out
    assert json.loads(results.read_text())["exercise"] == "strongest_head"


def test_of_two_mistakes_that_fail_a_case_alike_the_one_that_passes_the_earlier_cases_is_named():
    def positive(x):
        return bool(x > 0)

    exercise = Exercise(
        positive,
        lambda gen: [Case((-1.0,), "minus one", expected=False), Case((0.0,), "zero", expected=False)],
        hint="h",
        wrong={"always true": lambda x: True, ">= instead of >": lambda x: bool(x >= 0)},
    )
    assert "known mistake: >= instead of >." in _verdict(lambda x: bool(x >= 0), exercise).verdict


def test_a_numpy_section_speaks_of_arrays():
    exercise = dataclasses.replace(ADD_ONE, arrays=True)
    verdict = _verdict(lambda x: x + 2, exercise).verdict
    assert "expected: array float32 shape (2, 3)" in verdict and "Tensor" not in verdict
