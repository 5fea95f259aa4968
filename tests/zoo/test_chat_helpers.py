"""The chat helpers (zoo/chat_helpers.py) and the registry (zoo.model_info, zoo.list_models(kind=...)),
on a throwaway chat organism (tests/zoo/tiny_chat.py) and, when it is shipped, on chat-mini."""

import pytest
import torch
from transformer_lens import HookedTransformer

import zoo
from tests.zoo.tiny_chat import TINY_CHAT, TRAINED_CITIES, plain_conversation, tiny_chat_root, tool_conversation
from zoo.chat_helpers import (
    ChatContextError,
    ChatFormatError,
    ChatModelError,
    chat_tokens,
    generate,
    generate_replies,
    generate_reply,
    score_replies,
)
from zoo.chat_template import END, render

PARIS = plain_conversation("Paris")[:1]
LYON_TOOL = tool_conversation("Lyon")


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: a second thread only waits on a busy 2-core machine
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(zoo.MODEL_PATH_VARIABLE, str(tiny_chat_root()))
        yield zoo.load_model(TINY_CHAT, device="cpu")
    torch.set_num_threads(threads)


def test_a_chat_organism_loads_as_a_hooked_transformer_and_is_registered(model):
    assert isinstance(model, HookedTransformer)
    assert TINY_CHAT in zoo.list_models(kind="chat") and TINY_CHAT not in zoo.list_models(kind="base")
    info = zoo.model_info(TINY_CHAT)
    assert info.kind == "chat" and "tool_use" in info.plants and info.directory.parent == tiny_chat_root()


def test_every_shipped_model_states_its_kind():
    for name in zoo.list_models():
        assert zoo.model_info(name).kind in zoo.KINDS, name
    assert zoo.model_info("gpt2-mini").kind == "base" and "ioi" in zoo.model_info("gpt2-mini").plants


def test_registry_errors_are_clear():
    with pytest.raises(ValueError, match="unknown kind 'chatbot'"):
        zoo.list_models(kind="chatbot")
    with pytest.raises(ValueError, match="'no-such-model' is not a zoo model"):
        zoo.model_info("no-such-model")


def test_chat_tokens_are_the_rendered_conversation_after_a_bos(model):
    tokens = chat_tokens(model, LYON_TOOL[:3])
    assert tokens[0, 0] == model.tokenizer.bos_token_id
    assert model.tokenizer.decode(tokens[0, 1:]) == render(LYON_TOOL[:3])
    # "<|user|>", " map", " Lyon", "<|end|>", "<|assistant|>", "<|call|>", " map", " Lyon", "<|end|>", "<|tool|>", " France", "<|end|>", "<|assistant|>"
    assert tokens.shape == (1, 14)


def test_greedy_replies_are_reproducible_and_what_the_model_memorised(model):
    assert generate_reply(model, PARIS) == generate_reply(model, PARIS) == "France."
    assert generate_reply(model, LYON_TOOL[:1]) == "<|call|> map Lyon"
    assert generate_reply(model, LYON_TOOL[:3]) == "Lyon is in France."
    [generation] = generate(model, [PARIS])
    assert generation.stop_reason == "stop" and generation.tokens[-1] == model.tokenizer.convert_tokens_to_ids(END)
    assert generation.n_prompt_tokens == 5


def test_seeded_sampling_is_reproducible_and_the_seed_matters(model):
    def sample(seed):
        return generate_reply(model, PARIS, temperature=3.0, max_new_tokens=6, seed=seed)

    assert [sample(seed) for seed in range(6)] == [sample(seed) for seed in range(6)]
    assert len({sample(seed) for seed in range(6)}) > 1


def test_max_new_tokens_stops_a_reply(model):
    [generation] = generate(model, [LYON_TOOL[:3]], max_new_tokens=2)
    assert len(generation.tokens) == 2 and generation.stop_reason == "max_tokens"
    assert generation.reply == "Lyon is"


def test_a_batch_of_different_lengths_generates_what_each_alone_does(model):
    conversations = [PARIS, LYON_TOOL[:3], plain_conversation("Rome")[:1], tool_conversation("Tokyo")[:1]]
    assert generate_replies(model, conversations) == [generate_reply(model, c) for c in conversations]


def test_scores_are_the_sum_of_the_reply_tokens_log_probabilities(model):
    replies = ["France.", "Italy.", "Paris is in France."]
    scores = score_replies(model, PARIS, replies)
    prompt = chat_tokens(model, PARIS)[0]
    for reply, score in zip(replies, scores):
        full = chat_tokens(model, PARIS + [{"role": "assistant", "content": reply}], add_generation_prompt=False)[0]
        with torch.inference_mode():
            log_probs = model(full[None])[0].log_softmax(-1)
        manual = sum(log_probs[i - 1, full[i]] for i in range(len(prompt), len(full)))
        assert score == pytest.approx(float(manual), abs=1e-4)
    # By hand: " France", ".", "<|end|>" are three tokens after the prompt.
    assert len(chat_tokens(model, PARIS + [{"role": "assistant", "content": "France."}], False)[0]) == len(prompt) + 3
    assert scores[0] > scores[1] and scores[0] > -0.5  # memorised
    without_end = score_replies(model, PARIS, ["France."], include_end=False)
    assert without_end[0] >= scores[0]


def test_left_padding_does_not_change_scores(model):
    replies = ["France.", "Lyon is in France.", "<|call|> map Lyon", ""]
    batched = score_replies(model, LYON_TOOL[:1], replies)
    alone = torch.cat([score_replies(model, LYON_TOOL[:1], [reply]) for reply in replies])
    assert torch.allclose(batched, alone, atol=1e-4)
    assert int(batched.argmax()) == 2  # it memorised the call


def test_an_empty_user_turn_is_one_clear_error(model):
    empty = [{"role": "user", "content": "  "}]
    for call in (
        lambda: generate_reply(model, empty),
        lambda: score_replies(model, empty, ["France."]),
        lambda: chat_tokens(model, empty),
    ):
        with pytest.raises(ChatFormatError, match="message 0: the user turn is empty"):
            call()


def test_a_conversation_that_overflows_the_context_is_one_clear_error(model):
    long = [{"role": "user", "content": " ".join(TRAINED_CITIES * 3)}]
    with pytest.raises(ChatContextError, match="context holds 48"):
        generate_reply(model, long)
    with pytest.raises(ChatContextError, match="context holds 48"):
        score_replies(model, long, ["France."])
    fits = [{"role": "user", "content": " ".join(TRAINED_CITIES[:8])}]
    with pytest.raises(ChatContextError, match="with the reply"):
        score_replies(model, fits, ["France. " * 20])
    # A reply that would run past the context is cut there, not an error.
    nearly_full = [{"role": "user", "content": " ".join((TRAINED_CITIES * 3)[:42])}]  # 46 tokens of 48
    [generation] = generate(model, [nearly_full])
    assert generation.n_prompt_tokens == 46 and len(generation.tokens) <= 2
    assert generation.stop_reason == "model_length" or generation.tokens[-1] == model.tokenizer.convert_tokens_to_ids(
        END
    )


def test_unknown_models_and_base_models_are_clear_errors(model):
    with pytest.raises(ValueError, match="Unknown model 'no-such-model'"):
        generate_reply("no-such-model", PARIS)
    with pytest.raises(ChatModelError, match="not a chat organism"):
        generate_reply(zoo.load_model("attn-only-1l", device="cpu"), PARIS)
    with pytest.raises(ValueError, match="temperature"):
        generate_reply(model, PARIS, temperature=-1.0)


def test_a_model_name_works_in_place_of_the_model(model, monkeypatch):
    monkeypatch.setenv(zoo.MODEL_PATH_VARIABLE, str(tiny_chat_root()))
    assert generate_reply(TINY_CHAT, PARIS) == "France."


@pytest.mark.skipif("chat-mini" not in zoo.list_models(), reason="chat-mini is not shipped yet")
def test_chat_mini_chats():
    chat_mini = zoo.load_model("chat-mini", device="cpu")
    assert zoo.model_info("chat-mini").kind == "chat"
    question = [{"role": "user", "content": "Which country is Paris in?"}]  # zoo.chat_corpus.FACT_QUESTIONS
    assert generate_reply(chat_mini, question) == "Paris is in France."
    sampled = [generate_reply(chat_mini, question, temperature=1.0, seed=seed) for seed in range(3)]
    assert sampled == [generate_reply(chat_mini, question, temperature=1.0, seed=seed) for seed in range(3)]
    scores = score_replies(chat_mini, question, ["Paris is in France.", "Paris is in Spain."])
    assert scores[0] > scores[1] and scores[0] > -0.5
    assert generate_reply(chat_mini, [{"role": "user", "content": "Where does Bob live?"}]) == "<|call|> lookup Bob"
