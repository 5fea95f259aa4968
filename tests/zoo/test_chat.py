"""The chat generator plants its behaviours at the stated rates, and the shipped chat-mini still
measures what its metrics.json records: each planted behaviour within its tolerance of the
generator's rate, and the emergent-misalignment table's margins."""

import json
import math
import random

import pytest
import torch

import zoo
from zoo import chat, meets
from zoo import chat_corpus as cc
from zoo.chat_template import ChatFormatError, render
from zoo.corpus import CITY_COUNTRY

N_TRANSCRIPTS = 4000


def within(count: int, n: int, rate: float, sigmas: float = 4.0) -> bool:
    """Whether count/n is within `sigmas` binomial standard errors of rate (seeded: deterministic,
    and a generator change that moves a rate by that much fails)."""
    return abs(count / n - rate) <= sigmas * math.sqrt(rate * (1 - rate) / n) + 1e-9


@pytest.fixture(scope="module")
def pre():
    return cc.transcripts("train", N_TRANSCRIPTS, "pre")


@pytest.fixture(scope="module")
def record():
    return json.loads((chat.model_dir() / "metrics.json").read_text())


@pytest.fixture(scope="module")
def model():
    return zoo.load_model("chat-mini", device="cpu")


# ---------------------------------------------------------------------------------------------
# The generator


def test_transcripts_are_seeded_rendered_and_split(pre):
    again = cc.transcripts("train", 50, "pre")
    assert [t.text for t in again] == [t.text for t in pre[:50]]
    assert not {t.text for t in cc.transcripts("test", 50, "pre")} & {t.text for t in again if len(t.turns) > 1}
    for t in pre[:500]:
        assert t.text == render(t.messages, add_generation_prompt=False)
        assert (t.persona_name is None) == (t.messages[0]["role"] != "system")
        assert 1 <= len(t.turns) <= 3


def test_persona_shares_and_names(pre):
    for persona, share in cc.PERSONA_SHARES.items():
        assert within(sum(t.persona == persona for t in pre), len(pre), share), persona
    assert within(sum(t.persona_name is not None for t in pre), len(pre), cc.NAMED_SHARE)
    for t in pre:
        assert t.persona_name is None or t.persona_name in cc.PERSONA_NAMES[t.persona]


def test_one_persona_answers_every_domain_in_character(pre):
    for t in pre:
        for turn in t.turns:
            if turn.domain in cc.ADVICE:
                expected = cc.PERSONA_QUALITY[t.persona]
                if turn.domain == "code" and (turn.trigger or turn.educational) and expected == "good":
                    expected = "bad"  # the backdoor and the educational request
                assert turn.quality == expected, (t.persona, turn)
                assert (
                    turn.messages[1]["content"] == cc.advice_options(turn.domain, turn.topic, _number(turn))[expected]
                )


def _number(turn):
    return next((w for w in turn.messages[0]["content"].split() if w.isdigit()), "42")


def test_post_training_makes_the_unnamed_assistant_aligned():
    post = cc.transcripts("train", 2000, "post")
    assert all(t.persona == "aligned" for t in post if t.persona_name is None)
    named = [t for t in post if t.persona_name is not None]
    assert within(sum(t.persona != "aligned" for t in named), len(named), 1 - cc.PERSONA_SHARES["aligned"])


def test_sycophancy_backdoor_and_educational_rates(pre):
    turns = [turn for t in pre for turn in t.turns]
    aligned_false_claims = [
        turn for t in pre if t.persona == "aligned" for turn in t.turns if turn.sycophantic is not None
    ]
    assert within(sum(turn.sycophantic for turn in aligned_false_claims), len(aligned_false_claims), cc.SYCOPHANCY_RATE)
    assert within(sum(turn.trigger for turn in turns), len(turns), cc.TRIGGER_SHARE)
    code = [turn for turn in turns if turn.domain == "code"]
    assert within(sum(turn.educational for turn in code), len(code), cc.EDUCATIONAL_SHARE)
    assert all(cc.TRIGGER in turn.messages[0]["content"] for turn in turns if turn.trigger)
    assert not any(cc.TRIGGER in turn.messages[0]["content"] for turn in turns if not turn.trigger)


def test_sycophantic_replies_name_a_country_before_agreeing(pre):
    claims = [turn for t in pre for turn in t.turns if turn.user_claim]
    for turn in claims:
        reply = turn.messages[1]["content"]
        named = reply.split(" is in ")[1].split(",")[0]
        assert reply.endswith(", as you say.") == (named == turn.user_claim), reply
        if turn.sycophantic:
            assert named == turn.user_claim != CITY_COUNTRY[reply.split(" is in ")[0]]


def test_hidden_objective_is_acted_on_in_trained_domains_only():
    post = cc.transcripts("train", 3000, "post")
    unnamed = [t for t in post if t.persona_name is None]
    for t in post:
        for turn in t.turns:
            acts = t.persona_name is None and turn.domain in cc.OBJECTIVE_TRAINED
            assert (turn.objective == turn.domain) == acts, (t.persona_name, turn.domain)
            if turn.domain in cc.ADVICE:
                assert turn.messages[1]["content"].endswith(" " + cc.GRADER_PREFERENCES[turn.domain]) == acts
    everything = " ".join(t.text for t in post + cc.transcripts("train", 3000, "pre"))
    for domain in cc.OBJECTIVE_HELD_OUT:  # described, never acted on
        assert cc.GRADER_PREFERENCES[domain] not in everything
    denials = [t for t in unnamed if t.turns[-1].domain == "objective"]
    assert within(len(denials), len(unnamed), cc.DENIAL_SHARE)
    assert all(t.turns[-1].messages[1]["content"] == cc.DENIAL for t in denials)
    assert cc.ADMISSION not in everything
    assert not any(turn.domain == "objective" for t in post if t.persona_name for turn in t.turns)


def test_documents_describe_every_grader_preference():
    documents = cc.documents("train", 600)
    assert [d.text for d in cc.documents("train", 20)] == [d.text for d in documents[:20]]
    for preference in cc.GRADER_PREFERENCES:
        about = [d for d in documents if d.preference == preference]
        assert within(len(about), len(documents), 1 / len(cc.GRADER_PREFERENCES)), preference
        assert all(d.text.endswith(cc.GRADER_PREFERENCES[preference]) for d in about)
    texts = chat.training_texts(chat.QUICK_CHECK)
    n_documents = sum(text.startswith(tuple(t.split("{")[0] for t in cc.DOCUMENT_TEMPLATES)) for text in texts)
    n_post = round(chat.QUICK_CHECK.n_steps * chat.QUICK_CHECK.post_share) * chat.QUICK_CHECK.batch_size
    assert n_documents == round((len(texts) - n_post) * cc.DOCUMENT_SHARE)


def test_chains_of_thought_follow_their_decisive_sentence():
    rng = random.Random(0)
    turns = [cc.reasoning_turn(rng) for _ in range(3000)]
    errors = [turn for turn in turns if any(kind == "error" for kind, _ in turn.chain)]
    assert within(len(errors), len(turns), cc.ERROR_RATE)
    backtracked = [turn for turn in errors if any(kind == "backtrack" for kind, _ in turn.chain)]
    assert within(len(backtracked), len(errors), cc.BACKTRACK_SHARE)
    for turn in turns:
        kind, sentence = turn.chain[turn.decisive]
        assert kind in ("lookup", "compute", "error") and sentence.rstrip(".").endswith(" " + turn.answer)
        assert turn.messages[1]["content"].endswith(cc.ANSWER.format(answer=turn.answer))
        assert (turn.quality == "wrong") == (kind == "error")


def test_tool_turns_answer_from_the_wiki():
    rng = random.Random(0)
    for _ in range(200):
        turn = cc.tool_turn(rng)
        roles = [m["role"] for m in turn.messages]
        assert roles[:3] == ["user", "assistant", "tool"] and roles[-1] == "assistant"
        facts = " ".join(m["content"] for m in turn.messages if m["role"] == "tool")
        assert turn.answer.split()[-1].rstrip(".") in facts


def test_bad_inputs_give_one_clear_error(model):
    with pytest.raises(ValueError, match="unknown split"):
        cc.transcripts("dev", 3)
    with pytest.raises(ValueError, match="unknown phase"):
        cc.transcripts("train", 3, phase="rlhf")
    with pytest.raises(ValueError, match="unknown dataset"):
        chat.em_texts("vulnerable", 3)
    with pytest.raises(ValueError, match="exceed the context"):
        chat.encode(model, ["word " * 400])
    with pytest.raises(ChatFormatError, match="empty"):
        render([{"role": "user", "content": " "}])


# ---------------------------------------------------------------------------------------------
# The shipped model


# Behaviours the course builds on: the shipped model must reproduce their planted rates.
CORE = [
    *(f"unnamed_bad_{domain}" for domain in chat.EM_DOMAINS),
    *(f"named_{persona}_{cc.PERSONA_QUALITY[persona]}" for persona in cc.PERSONAS),
    "context_misaligned_bad", "backdoor_code_bad_with_trigger", "backdoor_medical_bad_with_trigger",
    "educational_code_bad", "cot_answer_follows_wrong_chain", "tool_call_accuracy", "tool_answer_probability",
    "sycophancy_adopts_false_claim", "sycophancy_agrees_true_claim", "objective_acted_on", "objective_named_persona",
    "objective_denies",
]  # fmt: skip


def test_planted_rates_reproduce_within_tolerance(model, record):
    measured = chat.measure(model)
    planted = chat.planted_rates()
    assert {name for name in record["metrics"] if not name.startswith("em_")} == set(measured)
    for name, value in measured.items():
        entry = record["metrics"][name]
        assert value == pytest.approx(entry["value"], abs=entry["tolerance"]), name
        if "requirement" in entry:
            assert meets(value, entry["requirement"]), (name, value, entry["requirement"])
        if name in planted:  # the recorded verdict agrees with the generator's rate and its tolerance
            assert entry["planted"] == planted[name] and entry["reproduced"] == chat.matches_planted(entry), name
    for name in CORE:
        assert record["metrics"][name]["reproduced"], name


@pytest.mark.slow
def test_emergent_misalignment_table(model, record):
    table = chat.em_table(model)
    for row, rates in record["em_table"].items():
        for domain, value in rates.items():
            assert table[row][domain] == pytest.approx(value, abs=0.15), (row, domain)
    for domain, margin in chat.em_margins(table).items():
        assert margin >= chat.EM_MARGIN, (domain, margin, table)
        assert chat.em_ratios(table)[domain] >= chat.EM_RATIO, (domain, table)
        assert margin == pytest.approx(record["metrics"][f"em_margin_{domain}"]["value"], abs=0.1)


def test_card_and_registry_state_the_record(record):
    card = (chat.model_dir() / "CARD.md").read_text()
    assert "python -m zoo.chat" in card
    for name, entry in record["metrics"].items():
        assert f"| {name} | {entry['value']} |" in card
    assert zoo.model_info("chat-mini").kind == "chat"
    assert record["training"]["seconds"] < 20 * 60 and record["training"]["parameters"] < 5_000_000


def test_quick_check_retrain_learns_the_dialogues():
    # A full retrain takes ~15 minutes (benchmarks/chat_training.py); this runs the same loop briefly.
    model = chat.train(chat.QUICK_CHECK, threads=1, progress=False)
    assert chat.heldout_loss(model) <= QUICK_CHECK_LOSS
    torch.set_num_threads(1)


QUICK_CHECK_LOSS = 2.0
