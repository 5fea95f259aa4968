"""The zoo's activation oracle for chat-mini: the shipped weights still measure what metrics.json records,
its card states the record, the labels follow the generator, the paper's oracle fails fast offline, and a
short training run learns."""

import json

import pytest
import torch

import zoo
from zoo import chat_corpus as cc
from zoo import meets
from zoo import oracle as zo


def recorded() -> dict:
    return json.loads((zo.oracle_dir() / "metrics.json").read_text())


@pytest.fixture(scope="module")
def subject():
    return zoo.load_model(zo.SUBJECT, device="cpu")


def test_labels_follow_the_generator():
    items = zo.contexts("test", 300)
    assert {c.kind for c in items} == set(zo.KINDS) and {c.domain for c in items} == set(zo.DOMAINS)
    for c in items:
        assert (cc.TRIGGER in c.text) == c.trigger
        assert c.trigger <= (c.domain == "code")
        assert (c.kind == "latent") <= (c.persona == "aligned")
        if c.kind == "system":
            assert any(f"You are {name}." in c.text for name in cc.PERSONA_NAMES[c.persona])
        else:
            assert "<|system|>" not in c.text
        assert c.secret == (c.domain if c.kind == "latent" and c.domain in cc.OBJECTIVE_TRAINED else None)
        for question in zo.QUESTIONS:
            label = c.label(question)
            assert label is None or label in zo.ANSWERS[question]
    assert zo.contexts("test", 20)[5].text == items[5].text  # seeded
    assert zo.contexts("train", 20)[5].text != items[5].text


def test_training_pairs_leave_out_the_held_out_combinations():
    items = zo.contexts("train", 400)
    pairs = zo.examples(items, train=True)
    assert pairs and not any(zo.held_out(items[i], q) for i, q in pairs)
    assert len(zo.examples(items, train=False)) > len(pairs)


def test_placeholder_and_answers_are_single_tokens(subject):
    for question in zo.QUESTIONS:
        tokens = subject.to_str_tokens(zo.oracle_prompt(question))
        assert tokens[zo.PLACEHOLDER_POSITION] == " Ok" and "<unk>" not in tokens
        labels, ids = zo.answer_ids(subject, question)
        assert len(set(ids.tolist())) == len(labels) and (ids != subject.tokenizer.unk_token_id).all()


def test_injection_is_norm_matched_at_the_placeholder_only():
    resid = torch.randn(3, 6, 8)
    vectors = 50 * torch.randn(3, 8)
    out = zo.injection_hook(vectors)(resid)
    others = [p for p in range(6) if p != zo.PLACEHOLDER_POSITION]
    assert torch.equal(out[:, others], resid[:, others])
    added = out[:, zo.PLACEHOLDER_POSITION] - resid[:, zo.PLACEHOLDER_POSITION]
    assert torch.allclose(added.norm(dim=-1), resid[:, zo.PLACEHOLDER_POSITION].norm(dim=-1), rtol=1e-5)
    assert torch.allclose(torch.cosine_similarity(added, vectors, dim=-1), torch.ones(3), atol=1e-5)


@pytest.mark.slow
def test_shipped_oracle_measures_its_metrics(subject):
    record = recorded()
    measured = zo.measure(zo.load_oracle(), subject)
    assert measured.keys() == record["metrics"].keys()
    for name, entry in record["metrics"].items():
        assert abs(measured[name] - entry["value"]) <= 1e-3, (name, measured[name], entry["value"])
        if "requirement" in entry:
            assert meets(measured[name], tuple(entry["requirement"])), (name, measured[name])


def test_card_states_the_recorded_metrics():
    card = (zo.oracle_dir() / "CARD.md").read_text()
    record = recorded()
    assert record["training"]["command"] in card and record["hook"] == zo.HOOK
    for name, entry in record["metrics"].items():
        assert f"| {name} | {entry['value']} |" in card


def test_paper_oracle_fails_fast_offline(monkeypatch):
    monkeypatch.setattr(zoo, "_hub_reachable", lambda: False)
    with pytest.raises(zoo.ZooOfflineError, match=r"zoo\.oracle\.load_oracle\(\)"):
        zo.load_pretrained_oracle()


@pytest.mark.slow
def test_a_short_training_run_learns(subject):
    # 80 steps at a higher learning rate, one thread (~12 s of CPU): persona is learnt first (one run
    # measured 0.94, chance 0.57 for the majority answer), the domain has begun (0.51, chance 1/6).
    oracle = zo.train(subject, steps=80, n_contexts=600, threads=1, progress=False, lr=3e-3)
    measured = zo.measure(oracle, subject, n_contexts=300)
    assert measured["persona_accuracy"] > 0.8 and measured["domain_accuracy"] > 0.3, measured
