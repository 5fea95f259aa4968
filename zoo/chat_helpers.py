"""Talk to a zoo chat organism in TransformerLens: tokenise a conversation, generate replies, score replies.

    from zoo import load_model
    from zoo.chat_helpers import chat_tokens, generate_reply, score_replies

    model = load_model("chat-mini", device="cpu")        # a HookedTransformer
    messages = [{"role": "user", "content": "Is Paris in France"}]
    generate_reply(model, messages)                      # greedy (temperature 0)
    generate_reply(model, messages, temperature=1.0, seed=3)   # sampled, the same for the same seed
    score_replies(model, messages, ["Yes.", "No."])      # log P(reply, then <|end|>) for each reply

The conversation is rendered by zoo.chat_template.render and tokenised with the BOS prepended, as
TransformerLens does for every zoo model. A reply is what the model writes after the final
"<|assistant|>" up to its "<|end|>". Each function also takes a model's name instead of the model.

Bad inputs fail with one clear error each: a conversation the template cannot render raises
ChatFormatError (an empty user turn, an unknown role), one that leaves no room in the model's context
raises ChatContextError, a model without the chat tokens raises ChatModelError, and an unknown model
name raises load_model's ValueError.
"""

from dataclasses import dataclass
from functools import lru_cache

import torch
from jaxtyping import Float, Int
from torch import Tensor

from zoo.chat_template import CHAT_TOKENS, END, ChatFormatError, render, reply_text

__all__ = [
    "ChatContextError",
    "ChatFormatError",
    "ChatModelError",
    "Generation",
    "chat_model",
    "chat_tokens",
    "generate",
    "generate_replies",
    "generate_reply",
    "score_replies",
]


class ChatContextError(ValueError):
    """A conversation (with its reply) longer than the model's context window (cfg.n_ctx)."""


class ChatModelError(ValueError):
    """A model that cannot chat: its tokenizer or vocabulary lacks the chat template's tokens."""


@dataclass
class Generation:
    """One generated reply: its text, the tokens the model wrote (the "<|end|>" included when it
    ended its turn), and why it stopped: "stop" (it wrote "<|end|>"), "max_tokens" (the caller's
    limit) or "model_length" (the context window was full)."""

    reply: str
    tokens: list[int]
    stop_reason: str
    n_prompt_tokens: int


@lru_cache(maxsize=4)
def _load(name: str):
    from zoo import load_model

    return load_model(name, device="cpu")


def chat_model(model):
    """The model itself, or the zoo model of that name (loaded once, on the CPU); checks that it
    can read the chat template (ChatModelError if not)."""
    if isinstance(model, str):
        model = _load(model)
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ChatModelError("the model has no tokenizer, so it cannot read a conversation")
    for token in CHAT_TOKENS:
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == tokenizer.unk_token_id or ids[0] >= model.cfg.d_vocab:
            raise ChatModelError(
                f"this model does not know the chat token {token!r} (its vocabulary has {model.cfg.d_vocab} "
                "tokens): it is not a chat organism. zoo.list_models(kind='chat') names the ones that are."
            )
    return model


def _end_id(model) -> int:
    return model.tokenizer.convert_tokens_to_ids(END)


def chat_tokens(model, messages: list[dict], add_generation_prompt: bool = True) -> Int[Tensor, "1 pos"]:
    """The conversation rendered with the chat template and tokenised, BOS first, on the model's
    device. ChatContextError if it does not fit in the model's context window."""
    model = chat_model(model)
    tokens = model.to_tokens(render(messages, add_generation_prompt), prepend_bos=True, truncate=False)
    if tokens.shape[1] > model.cfg.n_ctx:
        raise ChatContextError(
            f"the conversation is {tokens.shape[1]} tokens long; the model's context holds {model.cfg.n_ctx}. "
            "Drop early turns or shorten them."
        )
    return tokens


def _left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[Tensor, Tensor]:
    """Rows of different lengths as one [batch, pos] tensor padded on the left, and its attention mask."""
    width = max(len(row) for row in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return tokens.to(device), mask.to(device)


def _next_tokens(
    logits: Float[Tensor, "batch d_vocab"],
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> Int[Tensor, " batch"]:
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Keep the smallest set of tokens whose probability reaches top_p (always the most likely one).
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), -torch.inf)
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


@torch.inference_mode()
def generate(
    model,
    conversations: list[list[dict]],
    temperature: float = 0.0,
    max_new_tokens: int | None = None,
    seed: int | None = 0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> list[Generation]:
    """A reply to each conversation, generated in one left-padded batch; each stops at "<|end|>".

    temperature 0 is greedy decoding; otherwise tokens are sampled from softmax(logits / temperature)
    (after top_k / top_p filtering) with a generator seeded by `seed` (None: fresh randomness), so
    the same call gives the same replies. max_new_tokens defaults to the room left in the context
    after the longest conversation."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    model = chat_model(model)
    prompts = [chat_tokens(model, messages)[0].tolist() for messages in conversations]
    room = model.cfg.n_ctx - max(len(prompt) for prompt in prompts)
    if room < 1:
        raise ChatContextError(
            f"a conversation fills the model's whole context ({model.cfg.n_ctx} tokens), leaving no room for a reply"
        )
    limit = room if max_new_tokens is None else min(max_new_tokens, room)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    tokens, mask = _left_pad(prompts, model.tokenizer.pad_token_id, model.cfg.device)
    end_id = _end_id(model)
    written: list[list[int]] = [[] for _ in prompts]
    finished = [False] * len(prompts)
    for _ in range(limit):
        logits = model(tokens, attention_mask=mask)[:, -1]
        chosen = _next_tokens(logits, temperature, top_k, top_p, generator)
        for i, token in enumerate(chosen.tolist()):
            if not finished[i]:
                written[i].append(token)
                finished[i] = token == end_id
        if all(finished):
            break
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        mask = torch.cat([mask, torch.tensor([[0 if done else 1] for done in finished], device=mask.device)], dim=1)
    generations = []
    for prompt, new, done in zip(prompts, written, finished):
        if done:
            reason = "stop"
        else:
            reason = "model_length" if len(prompt) + len(new) >= model.cfg.n_ctx else "max_tokens"
        text = reply_text(model.tokenizer.decode(new))
        generations.append(Generation(text, new, reason, len(prompt)))
    return generations


def generate_replies(
    model,
    conversations: list[list[dict]],
    temperature: float = 0.0,
    max_new_tokens: int | None = None,
    seed: int | None = 0,
) -> list[str]:
    """The reply text to each conversation (see `generate`; one batch, so a seeded sample depends on
    the whole batch: the same batch and seed give the same replies)."""
    return [generation.reply for generation in generate(model, conversations, temperature, max_new_tokens, seed)]


def generate_reply(
    model,
    messages: list[dict],
    temperature: float = 0.0,
    max_new_tokens: int | None = None,
    seed: int | None = 0,
) -> str:
    """The model's reply to one conversation: greedy at temperature 0, else sampled with `seed`."""
    return generate(model, [messages], temperature, max_new_tokens, seed)[0].reply


def _reply_rows(model, messages: list[dict], replies: list[str], include_end: bool) -> tuple[list[list[int]], int]:
    prompt = chat_tokens(model, messages)[0].tolist()
    rows = []
    for reply in replies:
        conversation = messages + [{"role": "assistant", "content": reply}]
        text = render(conversation, add_generation_prompt=False)
        row = model.to_tokens(text, prepend_bos=True, truncate=False)[0].tolist()
        if not include_end:
            row = row[:-1]  # render ends the turn with "<|end|>"
        if row[: len(prompt)] != prompt:  # cannot happen while "<|assistant|>" is one token
            raise ChatModelError(f"the reply {reply!r} changes how the conversation before it is tokenised")
        if len(row) > model.cfg.n_ctx:
            raise ChatContextError(
                f"the conversation with the reply {reply!r} is {len(row)} tokens long; "
                f"the model's context holds {model.cfg.n_ctx}"
            )
        rows.append(row)
    return rows, len(prompt)


@torch.inference_mode()
def score_replies(model, messages: list[dict], replies: list[str], include_end: bool = True) -> Float[Tensor, " n"]:
    """log P(reply | conversation) for each reply: the sum of the log-probabilities of the reply's
    tokens after the final "<|assistant|>", with its closing "<|end|>" (include_end=False leaves
    the "<|end|>" out: the probability that the reply starts this way). Scored in one left-padded
    batch; the padding changes no score (tests/zoo/test_chat_helpers.py)."""
    model = chat_model(model)
    if not replies:
        return torch.zeros(0)
    rows, n_prompt = _reply_rows(model, messages, [str(reply).strip() for reply in replies], include_end)
    tokens, mask = _left_pad(rows, model.tokenizer.pad_token_id, model.cfg.device)
    log_probs = model(tokens, attention_mask=mask).log_softmax(-1)[:, :-1]
    token_log_probs = log_probs.gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, pos - 1]
    scores = []
    for i, row in enumerate(rows):
        # Row i's reply tokens sit at the last len(row) - n_prompt positions; each is predicted
        # from the position before it.
        n_reply = len(row) - n_prompt
        scores.append(token_log_probs[i, token_log_probs.shape[1] - n_reply :].sum() if n_reply else 0.0)
    return torch.tensor([float(score) for score in scores])
