"""The shipped grokking model (zoo/grokking/mod-add) still measures what its metrics.json records."""

import pytest
import torch

from zoo import grokking


@pytest.fixture(scope="module")
def record():
    return grokking.load_metrics()


def test_shipped_files_are_small_and_consistent(record):
    size = sum(path.stat().st_size for path in grokking.GROKKING_DIR.iterdir())
    assert size < 10_000_000
    steps = grokking.checkpoint_steps()
    assert steps == list(range(0, grokking.N_STEPS + 1, grokking.CHECKPOINT_EVERY))
    train, test = grokking.load_split()
    assert torch.equal(train, grokking.make_split()[0]) and torch.equal(test, grokking.make_split()[1])
    assert len(train) + len(test) == grokking.P**2 and len(set(train.tolist()) & set(test.tolist())) == 0
    assert record["training"]["p"] == grokking.P


def test_key_frequencies_and_metrics_reproduce(record):
    weights = grokking.load_weights()
    measured = grokking.measure(weights, grokking.load_history())
    assert measured["key_frequencies"] == record["key_frequencies"]
    for name, entry in record["metrics"].items():
        assert measured[name] == pytest.approx(entry["value"], abs=entry["tolerance"]), name
    # What the course relies on: the model has grokked, and the key frequencies explain most logits.
    assert measured["test_accuracy"] >= 0.99
    assert measured["fraction_of_logit_variance_explained"] >= 0.8


def test_hooked_transformer_matches_the_training_forward_pass():
    tokens, _ = grokking.all_inputs()
    weights = grokking.load_weights()
    model = grokking.load_grokking_model()
    with torch.no_grad():
        assert torch.allclose(model(tokens)[:, -1], grokking.fast_logits(weights, tokens), atol=1e-4)
    early = grokking.load_grokking_model(step=200)
    assert not torch.allclose(early.W_E, model.W_E)
    with pytest.raises(ValueError):
        grokking.load_weights(step=123)


def test_phases_are_ordered_and_match_the_history(record):
    history = grokking.load_history()
    phases = record["phases"]
    assert grokking.phases(history) == {k: phases[k] for k in ["memorised", "cleanup_start", "grokked"]}
    assert 0 < phases["memorised"] < phases["cleanup_start"] < phases["grokked"] <= grokking.N_STEPS
    at = {h["step"]: h for h in history}
    # Circuit formation: before cleanup starts, the restricted loss has fallen far below chance
    # while the test loss is still above it.
    before = at[phases["cleanup_start"] - 2 * grokking.LOG_EVERY]
    assert before["restricted_loss"] < 1.0 < history[0]["test_loss"] < before["test_loss"]
    assert phases["weight_norm_final"] < 0.8 * phases["weight_norm_peak"]


def test_card_states_the_recorded_metrics(record):
    card = (grokking.GROKKING_DIR / "CARD.md").read_text()
    assert "python -m zoo.grokking" in card
    assert str(record["key_frequencies"]) in card
    for name, entry in record["metrics"].items():
        assert f"| {name} | {entry['value']} |" in card


@pytest.mark.slow
def test_short_retrain_memorises_and_starts_forming_the_circuit(record):
    """500 steps (~20 s on one thread): the same seeded run reproduces the shipped history."""
    threads = torch.get_num_threads()
    try:
        _, _, history, _ = grokking.train(threads=1, progress=False, n_steps=500)
    finally:
        torch.set_num_threads(threads)
    shipped = {h["step"]: h for h in grokking.load_history()}
    for entry in history:
        for key in ["train_loss", "test_loss", "weight_norm"]:
            assert entry[key] == pytest.approx(shipped[entry["step"]][key], rel=0.05, abs=0.01), (entry["step"], key)
