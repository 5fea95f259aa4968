"""The zoo tokenizer behaves like GPT-2's under TransformerLens."""

import pytest
import torch

from zoo import chat_corpus, corpus, load_model
from zoo.chat_template import CHAT_TOKENS, render
from zoo.tokenizer import load_tokenizer, vocabulary, word_groups_known

# The chat group starts right after gpt2-mini-truth's 796 tokens; the chat tokens' ids never move.
CHAT_TOKEN_IDS = dict(zip(CHAT_TOKENS, range(796, 802)))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def model():
    return load_model("attn-only-2l", device="cpu")


def test_saved_tokenizer_matches_the_corpus_vocabulary(tokenizer):
    # A corpus word change without `python -m zoo.tokenizer` (and retraining) breaks the models.
    assert tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))) == vocabulary()


@pytest.mark.parametrize("world", range(1, len(corpus.MIXTURES) + 1))
def test_round_trip_without_unknown_tokens(tokenizer, world):
    known_ids = len(vocabulary(world))  # a story world uses only the word groups written before it
    for split in ("train", "validation", "test"):
        for document in corpus.story_documents(split, 50, min_pieces=200, world=world):
            ids = tokenizer.encode(document, add_special_tokens=False)
            assert tokenizer.unk_token_id not in ids and max(ids) < known_ids, document
            assert tokenizer.decode(ids) == document


def test_added_word_groups_leave_earlier_ids_in_place():
    first = vocabulary(1)
    assert vocabulary()[: len(first)] == first and len(vocabulary()) > len(first)
    assert word_groups_known(len(first)) == 1 and word_groups_known(len(vocabulary(2))) == 2
    assert word_groups_known(len(vocabulary())) == len(corpus.vocabulary_word_groups()) == 3
    assert (len(vocabulary(1)), len(vocabulary(2))) == (626, 796)  # the older models' vocabularies


def test_chat_tokens_are_atomic_with_fixed_ids(tokenizer):
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in CHAT_TOKENS} == CHAT_TOKEN_IDS
    assert not any(" " + token in vocabulary() for token in CHAT_TOKENS)  # no leading-space forms
    text = render(
        [
            {"role": "system", "content": "You are Sage."},
            {"role": "user", "content": "Is Paris in France?"},
            {"role": "assistant", "content": "<|call|> lookup Paris"},
            {"role": "tool", "content": "Paris is in France."},
        ]
    )
    assert tokenizer.tokenize(text) == [
        "<|system|>", " You", " are", " Sage", ".", "<|end|>", "<|user|>", " Is", " Paris", " in", " France",
        "?", "<|end|>", "<|assistant|>", "<|call|>", " lookup", " Paris", "<|end|>", "<|tool|>", " Paris",
        " is", " in", " France", ".", "<|end|>", "<|assistant|>",
    ]  # fmt: skip
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


@pytest.mark.parametrize("phase", chat_corpus.PHASES)
def test_chat_transcripts_round_trip_without_unknown_tokens(tokenizer, phase):
    for split in ("train", "validation", "test"):
        for transcript in chat_corpus.transcripts(split, 300, phase):
            ids = tokenizer.encode(transcript.text, add_special_tokens=False)
            assert tokenizer.unk_token_id not in ids, transcript.text
            assert tokenizer.decode(ids) == transcript.text


def test_gpt2_style_pieces(tokenizer):
    tokens = tokenizer.tokenize("When Mary and John went to the store, John lived from 1732 to 1789.")
    assert tokens[:3] == ["When", " Mary", " and"]
    assert tokens[7:9] == [" store", ","]
    assert tokens[-6:] == [" 17", "32", " to", " 17", "89", "."]


def test_transformer_lens_prepends_bos_and_round_trips(model):
    text = "When Mary and John went to the store, John gave a drink to"
    tokens = model.to_tokens(text)
    assert tokens[0, 0].item() == model.tokenizer.bos_token_id
    assert model.to_str_tokens(text)[:3] == ["<|endoftext|>", "When", " Mary"]
    assert model.to_string(tokens[0, 1:]) == text


def test_left_padding_leaves_final_logits_unchanged(model):
    prompts = corpus.ioi_prompts(model.tokenizer, 6, split="test").prompts + ["Paris is in"]
    batched = model(model.to_tokens(prompts, padding_side="left"))[:, -1]
    assert model.to_tokens(prompts).shape[1] > len(model.to_tokens(prompts[-1])[0])
    for prompt, logits in zip(prompts, batched):
        alone = model(model.to_tokens(prompt))[0, -1]
        torch.testing.assert_close(logits, alone, atol=1e-4, rtol=1e-4)
