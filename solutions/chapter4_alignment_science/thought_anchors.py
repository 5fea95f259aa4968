"""Reference solutions for 4.3 Thought anchors (Bogdan et al. 2025), on the zoo's chat-mini.

The chains of thought come from zoo/chat_corpus.py's `reasoning_turn` (imported, never copied), which
records each sentence's type and the decisive sentence the answer follows. The functions here are
the learner's analysis: splitting and classifying sentences, black-box importance (forced answers,
resampling, counterfactual resampling), and white-box importance (sentence-level attention, receiver
heads by kurtosis, attention suppression). Importing runs nothing.
"""

import random
import re
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from zoo import chat as zc
from zoo import chat_corpus as cc
from zoo.chat_template import render
from zoo.corpus import CITY_COUNTRY

ANSWER_OPENING = cc.ANSWER.split("{")[0].strip()  # "so the answer is"


# ----------------------------------------------------------------------------- the chains


@dataclass
class Chain:
    """One chain of thought from the generator: the prompt (ending in "<|assistant|>"), its
    sentences (without "think:" and the answer sentence), their types, the decisive sentence's index
    and the final answer."""

    prompt: str
    sentences: list[str]
    types: list[str]
    decisive: int
    answer: str
    kind: str

    def prefix(self, k: int) -> str:
        """The prompt and the chain cut after its first k sentences."""
        return self.prompt + " " + " ".join([cc.THINK, *self.sentences[:k]])

    def reply(self) -> str:
        """The assistant's reply: "think:", the sentences and the answer sentence."""
        return " ".join([cc.THINK, *self.sentences, cc.ANSWER.format(answer=self.answer)])

    def text(self) -> str:
        """The prompt and the whole reply."""
        return self.prompt + " " + self.reply()


def reasoning_chains(n_per_group: int, seed: int = 0) -> list[Chain]:
    """n_per_group chains of each of three groups, drawn with chat_corpus.reasoning_turn: no error,
    an error that is backtracked, and an error that stands (the answer then follows it)."""
    rng = random.Random(f"thought-anchors-{seed}")
    groups: dict[str, list[Chain]] = {"right": [], "backtracked": [], "standing": []}
    while min(len(g) for g in groups.values()) < n_per_group:
        turn = cc.reasoning_turn(rng)
        types = [t for t, _ in turn.chain]
        group = "right" if "error" not in types else "backtracked" if "backtrack" in types else "standing"
        if len(groups[group]) < n_per_group:
            kind = ["hop", "sum"][turn.topic]
            chain = Chain(
                render(turn.messages[:1]), [s for _, s in turn.chain], types, turn.decisive, turn.answer, kind
            )
            groups[group].append(chain)
    return [c for g in groups.values() for c in g]


def sentence_bounds(model: HookedTransformer, chain: Chain) -> list[tuple[int, int]]:
    """Token ranges [start, end) of each sentence of chain.text() (BOS included in the count), the
    answer sentence last."""
    ends = [len(zc.encode(model, [chain.prefix(k)])[0][0]) for k in range(len(chain.sentences) + 1)]
    ends.append(len(zc.encode(model, [chain.text()])[0][0]))
    return list(zip(ends[:-1], ends[1:]))


@torch.inference_mode()
def sample_rollouts(
    model: HookedTransformer, prefixes: list[str], n_samples: int, max_new_tokens: int = 24, seed: int = 0
) -> list[list[str]]:
    """n_samples continuations (temperature 1) of each prefix, sampled in one left-padded batch with
    a KV cache; each continuation is cut at the first "<|end|>"."""
    torch.manual_seed(seed)
    rows = [p for p in prefixes for _ in range(n_samples)]
    tokens = model.to_tokens(rows, padding_side="left")
    out = model.generate(
        tokens,
        max_new_tokens=max_new_tokens,
        temperature=1.0,
        use_past_kv_cache=True,
        stop_at_eos=False,
        verbose=False,
        padding_side="left",
    )
    texts = [model.tokenizer.decode(row[tokens.shape[1] :]).split("<|end|>")[0] for row in out]
    return [texts[i * n_samples : (i + 1) * n_samples] for i in range(len(prefixes))]


# ----------------------------------------------------------------------------- sentences


def split_sentences(reply: str) -> list[str]:
    """The sentences of a reply "think: S1. S2. ... so the answer is X.": "think:" dropped, each
    sentence with its final ".", the answer sentence last; spaces around sentences removed."""
    text = reply.strip()
    if text.startswith(cc.THINK):
        text = text[len(cc.THINK) :]
    return [s.strip() for s in re.split(r"(?<=\.)\s+", text.strip()) if s.strip()]


def classify_sentence(sentence: str) -> str:
    """The type of one chain sentence: "filler", "plan", "backtrack", "answer" (starts "so the answer
    is"), "lookup" ("<city> is in <country>." with the true country), "compute" ("<a> plus <b> is
    <total>." with the true total), "error" (a lookup or compute that is false), else "other"."""
    if sentence in cc.FILLERS:
        return "filler"
    if sentence == cc.BACKTRACK:
        return "backtrack"
    if sentence.startswith(ANSWER_OPENING):
        return "answer"
    if sentence == cc.PLANS["sum"] or re.fullmatch(r"I need the country of (.+)\.", sentence):
        return "plan"
    lookup = re.fullmatch(r"(.+) is in (.+)\.", sentence)
    if lookup and lookup.group(1) in CITY_COUNTRY:
        return "lookup" if CITY_COUNTRY[lookup.group(1)] == lookup.group(2) else "error"
    compute = re.fullmatch(r"(\d+) plus (\d+) is (\d+)\.", sentence)
    if compute:
        a, b, total = map(int, compute.groups())
        return "compute" if a + b == total else "error"
    return "other"


# ----------------------------------------------------------------------------- black box


@torch.inference_mode()
def forced_answer_importance(model: HookedTransformer, chain: Chain) -> Float[Tensor, " n_sentences"]:
    """Force the answer after each cut: p_k = P(" " + chain.answer | chain.prefix(k) + " so the answer
    is") for k = 0..n (next-token probability over the whole vocabulary). Sentence i's importance is
    p_{i+1} - p_i."""
    texts = [chain.prefix(k) + " " + ANSWER_OPENING for k in range(len(chain.sentences) + 1)]
    tokens, real = zc.encode(model, texts)
    logits = model(tokens)[torch.arange(len(texts)), real.sum(1) - 1]
    answer_id = model.tokenizer.convert_tokens_to_ids(" " + chain.answer)
    p = logits.softmax(-1)[:, answer_id]
    return p[1:] - p[:-1]


def answer_of(continuation: str) -> str | None:
    """The answer X of the first "so the answer is X." in a continuation; None if there is none."""
    found = re.search(ANSWER_OPENING + r" (\S+?)\.", continuation)
    return found.group(1) if found else None


def resampling_importance(rollouts: list[list[str]], answer: str) -> Float[Tensor, " n_sentences"]:
    """rollouts[k]: continuations sampled from the chain cut after k sentences (k = 0..n). With a_k
    the share of cut k's rollouts whose answer (answer_of) is `answer`, sentence i's importance is
    a_{i+1} - a_i: how much keeping sentence i, rather than resampling it, moves the answer."""
    a = torch.tensor([sum(answer_of(r) == answer for r in rs) / len(rs) for rs in rollouts])
    return a[1:] - a[:-1]


def kl_importance(rollouts: list[list[str]]) -> Float[Tensor, " n_sentences"]:
    """The paper's resampling importance: sentence i's importance is KL(kept || resampled) between the
    answer distributions of cut i + 1 (sentence i kept) and of cut i (sentence i resampled). Each
    distribution comes from answer counts (answer_of; no answer, None, is an outcome too) with Laplace
    smoothing over the answers seen in the two cuts together: p(x) = (count(x) + 1) / (n + K), with n
    the cut's rollouts and K the number of distinct answers in both cuts. Natural log."""
    out = torch.zeros(len(rollouts) - 1)
    answers = [[answer_of(r) for r in rs] for rs in rollouts]
    for i in range(len(rollouts) - 1):
        resampled, kept = answers[i], answers[i + 1]
        seen = set(resampled) | set(kept)
        p = torch.tensor([(kept.count(x) + 1) / (len(kept) + len(seen)) for x in seen])
        q = torch.tensor([(resampled.count(x) + 1) / (len(resampled) + len(seen)) for x in seen])
        out[i] = (p * (p / q).log()).sum()
    return out


def counterfactual_importance(
    rollouts: list[list[str]], sentences: list[str], answer: str
) -> Float[Tensor, " n_sentences"]:
    """Like resampling_importance, but a_i (the resampled side) counts only the rollouts of cut i
    whose first sentence (split_sentences of the continuation) differs from sentences[i]: sentence
    i's importance is a_{i+1} over all of cut i+1's rollouts minus the answer rate among those
    counterfactual rollouts; 0.0 when cut i has none."""
    out = torch.zeros(len(sentences))
    for i, sentence in enumerate(sentences):
        kept = sum(answer_of(r) == answer for r in rollouts[i + 1]) / len(rollouts[i + 1])
        different = [r for r in rollouts[i] if (split_sentences(r) or [""])[0] != sentence]
        if different:
            out[i] = kept - sum(answer_of(r) == answer for r in different) / len(different)
    return out


# ----------------------------------------------------------------------------- white box


def sentence_attention(
    pattern: Float[Tensor, "query key"], bounds: list[tuple[int, int]]
) -> Float[Tensor, "n_sentences n_sentences"]:
    """Sentence-to-sentence attention: entry [i, j] is the attention that the tokens of sentence i
    pay to the tokens of sentence j (summed over j's tokens), averaged over i's tokens."""
    n = len(bounds)
    out = torch.zeros(n, n)
    for i, (qs, qe) in enumerate(bounds):
        for j, (ks, ke) in enumerate(bounds):
            out[i, j] = pattern[qs:qe, ks:ke].sum(-1).mean()
    return out


def vertical_scores(matrix: Float[Tensor, "n_sentences n_sentences"], min_gap: int = 1) -> Float[Tensor, " n"]:
    """How much attention each sentence j receives from later sentences: the mean of column j over
    the rows i >= j + min_gap (0.0 where there are none)."""
    n = matrix.shape[0]
    out = torch.zeros(n)
    for j in range(n):
        if j + min_gap < n:
            out[j] = matrix[j + min_gap :, j].mean()
    return out


def kurtosis(x: Float[Tensor, "... n"]) -> Float[Tensor, "..."]:
    """Kurtosis over the last dimension: the mean fourth power of the deviations from the mean over
    the squared (population) variance. A normal sample gives about 3; one large outlier, much more."""
    deviations = x - x.mean(-1, keepdim=True)
    return (deviations**4).mean(-1) / (deviations**2).mean(-1) ** 2


@torch.inference_mode()
def suppression_kl(
    model: HookedTransformer, tokens: Int[Tensor, " pos"], bounds: list[tuple[int, int]]
) -> Float[Tensor, "n_sentences n_sentences"]:
    """Entry [i, j] (i > j): the mean over sentence i's tokens of KL(original || suppressed) between
    the next-token distributions of one forward pass and of one in which no token after sentence j
    may attend to sentence j's tokens (in every head of every layer); zero for i <= j."""
    n = len(bounds)
    logp = model(tokens[None]).log_softmax(-1)[0]
    batch = tokens[None].expand(n, -1)
    masked = torch.zeros(n, len(tokens), len(tokens), dtype=torch.bool)
    for j, (start, end) in enumerate(bounds):
        masked[j, end:, start:end] = True

    def suppress(scores, hook):
        return scores.masked_fill(masked[:, None], float("-inf"))

    hooks = [(f"blocks.{layer}.attn.hook_attn_scores", suppress) for layer in range(model.cfg.n_layers)]
    logq = model.run_with_hooks(batch, fwd_hooks=hooks).log_softmax(-1)
    kl = (logp.exp()[None] * (logp[None] - logq)).sum(-1)  # [n (suppressed j), pos]
    out = torch.zeros(n, n)
    for i, (start, end) in enumerate(bounds):
        for j in range(i):
            out[i, j] = kl[j, start:end].mean()
    return out


def top1_rate(scores: list[Float[Tensor, " n"]], decisive: list[int]) -> float:
    """The share of chains whose highest score (the first on ties) is at the decisive sentence."""
    return sum(int((s == s.max()).nonzero()[0, 0]) == d for s, d in zip(scores, decisive)) / len(scores)


# ----------------------------------------------------------------------------- the paper's models

# Bogdan et al. used R1-distilled models, which TransformerLens 3.9 does not load; Qwen3 thinks aloud the same way.
REAL_MODELS = ("Qwen/Qwen3-1.7B", "Qwen/Qwen3-8B")


def load_reasoning_model(model_name: str = REAL_MODELS[0], device: str = "cpu") -> HookedTransformer:
    """A reasoning model from the HuggingFace hub, for online users (split its thinking with
    split_sentences' idea and rerun every method). Offline it raises zoo.ZooOfflineError at once,
    naming chat-mini."""
    import zoo

    if model_name not in REAL_MODELS:
        raise ValueError(f"unknown model {model_name!r}; known: {REAL_MODELS}")
    return zoo.load_model(model_name, device=device)
