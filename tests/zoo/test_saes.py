"""The zoo's SAEs: shipped in SAELens's format, still measuring what their metrics.json records; pretrained
releases fail fast offline; the concept labels follow the corpus's ground truth."""

import json
import re

import pytest
import torch

from tests.zoo.test_models import run_python
from zoo import chat as zc
from zoo import corpus, meets, saes
from zoo.concepts import CONCEPTS, concept_labels, precision_recall, statement_is_true
from zoo.tokenizer import load_tokenizer


def recorded(name: str) -> dict:
    return json.loads((saes.SAES_DIR / name / "metrics.json").read_text())


def test_every_zoo_sae_is_shipped():
    assert saes.list_saes() == sorted(saes.SAES) and saes.list_saes(None) == sorted(saes.ALL_SAES)
    assert saes.list_saes("chat-mini") == sorted(saes.CHAT_SAES)
    assert {spec.architecture for spec in saes.SAES.values()} >= {"standard", "topk"}


@pytest.fixture(scope="module")
def models():
    return {name: saes.load_sae_transformer(name) for name in sorted({spec.model for spec in saes.ALL_SAES.values()})}


@pytest.mark.parametrize("name", sorted(saes.ALL_SAES))
def test_sae_loads_with_saelens_and_measures_its_metrics(name, models):
    from sae_lens import SAE

    spec, record = saes.ALL_SAES[name], recorded(name)
    model = models[spec.model]
    on_disk = SAE.load_from_disk(saes.SAES_DIR / name)  # SAELens's own format, no zoo code
    sae = saes.load_sae(name)
    assert type(sae) is type(on_disk) and torch.equal(sae.W_dec, on_disk.W_dec)
    assert sae.cfg.metadata.hook_name == spec.hook_name == record["hook_name"]
    assert sae.cfg.metadata.model_name == spec.model == record["model"]
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (model.cfg.d_model, spec.d_sae)
    assert sae.cfg.architecture() == spec.architecture
    measured = saes.measure(model, sae)
    assert measured.keys() == record["metrics"].keys()
    for metric, entry in record["metrics"].items():
        assert measured[metric] == pytest.approx(entry["value"], abs=entry["tolerance"]), metric
        if "requirement" in entry:
            assert meets(measured[metric], entry["requirement"]), (metric, entry["requirement"])


@pytest.mark.parametrize("name", sorted(saes.ALL_SAES))
def test_card_states_the_recorded_metrics(name):
    card = (saes.SAES_DIR / name / "CARD.md").read_text()
    record = recorded(name)
    assert "python -m zoo.saes" in card and record["hook_name"] in card
    for metric, entry in record["metrics"].items():
        assert f"| {metric} | {entry['value']} |" in card


def test_chat_sae_reads_chat_minis_own_text():
    model = saes.load_sae_transformer("chat-mini")
    texts = saes.chat_texts("train", 200)
    assert set(texts) <= set(zc.training_texts(zc.CHAT_MINI)) and any(t.startswith("The graders") for t in texts)
    assert all("<|assistant|>" in t or "graders" in t for t in texts)
    tokens = saes.chat_tokens(model, texts[:4])
    assert tokens.shape == (4, model.cfg.n_ctx) and (tokens[:, 0] == model.tokenizer.bos_token_id).all()
    assert torch.equal(tokens[0, : zc.encode(model, texts[:1])[0].shape[1]], zc.encode(model, texts[:1])[0][0])
    held_out = saes.chat_texts("test", 100)
    assert len(held_out) == 100 and any("<|system|>" not in t and "graders" in t for t in held_out)


def test_unknown_sae_lists_the_zoo():
    with pytest.raises(ValueError) as error:
        saes.load_sae("no-such-sae")
    for name in saes.ALL_SAES:
        assert name in str(error.value)


OFFLINE_CHECK = """
import time
import sae_lens  # imported first: its import time is not what is being measured
import zoo
from zoo.saes import load_sae
start = time.perf_counter()
try:
    load_sae("gpt2-small-res-jb", sae_id="blocks.8.hook_resid_pre")
except zoo.ZooOfflineError as error:
    print(error)
print(f"seconds={time.perf_counter() - start:.2f}")
"""


@pytest.mark.parametrize("hf_hub_offline", ["1", ""])
def test_pretrained_release_offline_fails_fast_naming_the_zoo_sae(hf_hub_offline):
    if not hf_hub_offline and saes._hub_reachable():
        pytest.skip("the HuggingFace hub is reachable here")
    completed = run_python(OFFLINE_CHECK, timeout=120, HF_HUB_OFFLINE=hf_hub_offline)
    assert completed.returncode == 0, completed.stderr
    assert "gpt2-small-res-jb needs the HuggingFace hub" in completed.stdout
    assert re.search(r"load_sae\('gpt2-mini-truth-L\d-standard'\)", completed.stdout), completed.stdout
    seconds = float(completed.stdout.split("seconds=")[1])
    assert seconds < 15, f"the offline error took {seconds:.1f} s"


def test_zoo_sae_loads_in_a_fresh_offline_process():
    code = "from zoo.saes import list_saes, load_sae; print([load_sae(n).cfg.d_sae for n in list_saes()])"
    completed = run_python(code, timeout=120, HF_HUB_OFFLINE="1")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == str([saes.SAES[n].d_sae for n in sorted(saes.SAES)])


# ----------------------------------------------------------------------------- concept labels


def labelled(text: str) -> dict[str, list[str]]:
    """concept -> the tokens of text that carry it."""
    tokenizer = load_tokenizer()
    str_tokens = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])
    labels = concept_labels(str_tokens, tokenizer)
    return {c: [t for t, on in zip(str_tokens, labels[:, i]) if on] for i, c in enumerate(CONCEPTS)}


def test_concepts_follow_the_word_lists_and_the_context():
    found = labelled(
        "Mary said that Paris is in Spain. That is false. The war lasted from 1732 to 1789. 05: 06, hot: COLD,"
    )
    assert found["name"] == ["Mary"] and found["city"] == [" Paris"] and found["country"] == [" Spain"]
    assert found["false_claim"] == [".", " That", " is"] and not found["true_claim"]
    assert found["year"] == [" 17", "32", " 17", "89"] and found["number"] == [" 05", " 06"]
    assert found["antonym_word"] == [" hot"] and found["uppercase_word"] == [" COLD"]
    assert found["truth_word"] == [" false"]


def test_claim_labels_follow_the_truth_of_each_family():
    for family in corpus.TRUTH_FAMILIES:
        for statement in corpus.truth_statements(family, n_years=40)[::7]:
            found = labelled(corpus.judged_claim(statement.text, "Mary"))
            assert found["true_claim" if statement.is_true else "false_claim"] == [".", " That", " is"], statement
            assert not found["false_claim" if statement.is_true else "true_claim"], statement


def test_statement_truth_matches_the_generator():
    for family in corpus.TRUTH_FAMILIES:
        assert all(statement_is_true(s.text) == s.is_true for s in corpus.truth_statements(family))
    with pytest.raises(ValueError):
        statement_is_true("Mary walked to the park.")


def test_every_concept_occurs_in_the_corpus_and_ids_match_strings():
    tokenizer = load_tokenizer()
    documents = corpus.story_documents("test", 200, min_pieces=64)
    ids = torch.tensor([tokenizer(d, add_special_tokens=False)["input_ids"][:64] for d in documents])
    labels = concept_labels(ids, tokenizer)
    assert labels.shape == (200, 64, len(CONCEPTS))
    assert labels.flatten(0, 1).any(0).all(), [c for c, seen in zip(CONCEPTS, labels.flatten(0, 1).any(0)) if not seen]
    assert torch.equal(labels[3], concept_labels(tokenizer.convert_ids_to_tokens(ids[3].tolist()), tokenizer))


def test_precision_recall():
    fires = torch.tensor([True, True, False, False])
    labels = torch.tensor([True, False, True, False])
    assert precision_recall(fires, labels) == (0.5, 0.5)
    assert precision_recall(torch.zeros(4, dtype=torch.bool), labels) == (0.0, 0.0)
