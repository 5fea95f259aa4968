"""The shipped bracket classifier (zoo/brackets/classifier) still measures what its metrics.json records."""

import random

import pytest
import torch

from zoo import brackets


@pytest.fixture(scope="module")
def record():
    return brackets.load_metrics()


@pytest.fixture(scope="module")
def model():
    return brackets.load_brackets_model()


def test_generator_is_seeded_and_labels_are_right():
    strings, kinds = brackets.generate(3000, seed=5)
    assert (strings, kinds) == brackets.generate(3000, seed=5)
    assert all(brackets.failure_type(s) == k for s, k in zip(strings, kinds))
    assert all(0 < len(s) <= brackets.MAX_LEN and set(s) <= set("()") for s in strings)
    share = {k: kinds.count(k) / len(kinds) for k in brackets.FAILURE_TYPES}
    assert 0.46 < share["balanced"] < 0.54 and min(share.values()) > 0.13
    # Hard negatives: most "negative" strings dip to exactly -1, most "nonzero" ones end within 2 of zero.
    dips = [min(brackets.elevation(s)) for s, k in zip(strings, kinds) if k == "negative"]
    ends = [brackets.elevation(s)[-1] for s, k in zip(strings, kinds) if k == "nonzero"]
    assert sum(d == -1 for d in dips) > 0.5 * len(dips) and sum(0 < e <= 2 for e in ends) > 0.8 * len(ends)


def test_failure_type_by_hand():
    assert brackets.failure_type("(()())") == "balanced"
    assert brackets.failure_type("())(") == "negative"
    assert brackets.failure_type("(()") == "nonzero"
    assert brackets.failure_type(")((") == "both"
    s = brackets.random_balanced(20, random.Random(0))
    assert brackets.is_balanced(s) and len(s) == 20


def test_tokens_and_padding_mask(model):
    tokens = brackets.tokenize(["()", ")("])
    assert tokens.shape == (2, brackets.N_CTX)
    assert tokens[0, :4].tolist() == [brackets.START, brackets.OPEN, brackets.CLOSE, brackets.END]
    assert (tokens[0, 4:] == brackets.PAD).all()
    strings = [s for s in brackets.generate(400, seed=9)[0] if len(s) <= 10]  # much padding to cut
    tokens = brackets.tokenize(strings)
    with torch.no_grad():
        full = brackets.run(model, tokens)
        short = brackets.run(model, tokens[:, : int((tokens != brackets.PAD).sum(1).max())])
    assert torch.allclose(full, short, atol=1e-4)
    assert not torch.allclose(full, model(tokens)[:, 0].detach(), atol=1e-2)  # unmasked padding matters


def test_metrics_reproduce(record, model):
    strings, kinds = brackets.test_set()
    measured = brackets.accuracy_by_type(model, strings, kinds)
    for name, entry in record["metrics"].items():
        assert measured[name] == pytest.approx(entry["value"], abs=entry["tolerance"]), name
    assert measured["test_accuracy"] > 0.99
    # "negative" failures are the hardest (about 97%); every type stays above 95%.
    assert min(measured[f"accuracy_{k}"] for k in brackets.FAILURE_TYPES) > 0.95


def test_analysis_reproduces(record, model):
    analysis = brackets.analyse(model)
    recorded = record["analysis"]
    for key in brackets.ANALYSIS_EXACT:
        assert analysis[key] == recorded[key], key
    for key, tol in brackets.ANALYSIS_TOLERANCES.items():
        assert analysis[key] == pytest.approx(recorded[key], abs=tol), key


def test_card_states_the_recorded_metrics(record):
    card = (brackets.BRACKETS_DIR / "CARD.md").read_text()
    assert "python -m zoo.brackets" in card
    for name, entry in record["metrics"].items():
        assert f"| {name} | {entry['value']} |" in card
    size = sum(path.stat().st_size for path in brackets.BRACKETS_DIR.iterdir())
    assert size < 1_000_000
